"""Streamed completions: generation on a thread of its own, text handed to the HTTP layer as it grows.

Torch-free: the engine passes in the function that generates one prompt. The thread owns the request's
lease (``release``), so the version stays loaded until generation has really ended, even when the
reader goes away before reading anything; a reader that closes the stream stops generation at the next
token.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial

from forgetd.serving.domain import ChoiceEnd, Completion, StreamEvent, StreamFailure, TextDelta

logger = logging.getLogger(__name__)

# generate(prompt, on_text, cancel) -> the completion; on_text receives the whole text decoded so far.
GenerateFn = Callable[[str, Callable[[str], None], threading.Event], Completion]

_REPLACEMENT = "\ufffd"  # what a decoder shows for the first bytes of a character still incomplete
_END = object()


def earliest_stop(text: str, stop: tuple[str, ...]) -> int | None:
    """Where the first stop string in ``text`` begins, ``None`` when there is none."""
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(cuts) if cuts else None


class StopHoldback:
    """Turns growing snapshots of one completion into deltas that never need taking back.

    Text that could still become the start of a stop string, and a trailing partial character, wait for
    the next snapshot; once a stop string appears nothing more is released. Every released delta is a
    prefix of the final (stop-cut) text, so :meth:`rest` completes it exactly.
    """

    def __init__(self, stop: tuple[str, ...]) -> None:
        self._stop = stop
        self._hold = max((len(s) for s in stop), default=1) - 1
        self._sent = 0
        self._stopped = False

    def update(self, snapshot: str) -> str:
        if self._stopped:
            return ""
        cut = earliest_stop(snapshot, self._stop)
        if cut is not None:
            self._stopped = True
            end = cut
        else:
            end = len(snapshot.rstrip(_REPLACEMENT)) - self._hold
        delta = snapshot[self._sent : max(end, self._sent)]
        self._sent += len(delta)
        return delta

    def rest(self, final_text: str) -> str:
        """What remains of the choice's final text after the deltas already released."""
        return final_text[self._sent :]


class ThreadedStream:
    """Generates ``prompts`` one after another on a daemon thread; iterate to read its events once."""

    def __init__(
        self,
        served_name: str,
        prompts: Sequence[str],
        stop: tuple[str, ...],
        generate: GenerateFn,
        release: Callable[[], None],
    ) -> None:
        self.served_name = served_name
        self._prompts = list(prompts)
        self._stop = stop
        self._generate = generate
        self._release = release
        self._events: queue.Queue[object] = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forgetd-stream", daemon=True)

    def start(self) -> ThreadedStream:
        self._thread.start()
        return self

    def close(self) -> None:
        self._cancel.set()

    def __iter__(self) -> Iterator[StreamEvent]:
        holdbacks = [StopHoldback(self._stop) for _ in self._prompts]
        while (item := self._events.get()) is not _END:
            if isinstance(item, tuple):  # (index, snapshot) from the generating thread
                index, snapshot = item
                delta = holdbacks[index].update(snapshot)
                if delta:
                    yield TextDelta(index, delta)
            elif isinstance(item, ChoiceEnd):
                rest = holdbacks[item.index].rest(item.completion.text)
                if rest:
                    yield TextDelta(item.index, rest)
                yield item
            elif isinstance(item, StreamFailure):
                yield item

    def _snapshot(self, index: int, text: str) -> None:
        self._events.put((index, text))

    def _run(self) -> None:
        try:
            for index, prompt in enumerate(self._prompts):
                if self._cancel.is_set():
                    break
                completion = self._generate(prompt, partial(self._snapshot, index), self._cancel)
                self._events.put(ChoiceEnd(index, completion))
        except Exception as e:
            # The kind of error only: its text could quote the prompt. The reader gets a fixed message.
            logger.error("streamed generation on %s failed: %s", self.served_name, type(e).__name__)
            self._events.put(StreamFailure("generation failed; the completion is incomplete"))
        finally:
            self._release()
            self._events.put(_END)
