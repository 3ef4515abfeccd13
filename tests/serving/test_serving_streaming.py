"""Streamed completions from the engine: deltas that add up to the non-streamed text, stops, failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
from serving_helpers import LINEAGE, PROMPT, Publish

from forgetd.serving.domain import ChoiceEnd, Completion, GenerationParams, StreamEvent, StreamFailure, TextDelta
from forgetd.serving.engine import EmbeddedEngine
from forgetd.serving.sse import SERVED_MODEL_HEADER, sse_response
from forgetd.serving.streaming import StopHoldback, ThreadedStream

GREEDY = GenerationParams(max_tokens=12)


def _read(events: list[StreamEvent]) -> tuple[dict[int, str], dict[int, ChoiceEnd]]:
    texts: dict[int, str] = {}
    ends = {}
    for event in events:
        if isinstance(event, TextDelta):
            assert event.index not in ends, "text after its choice ended"
            texts[event.index] = texts.get(event.index, "") + event.text
        elif isinstance(event, ChoiceEnd):
            ends[event.index] = event
    return texts, ends


@pytest.mark.parametrize("params", [GREEDY, GenerationParams(max_tokens=12, temperature=0.9, seed=3)])
def test_streamed_text_equals_the_completion(
    engine: EmbeddedEngine, publish: Publish, params: GenerationParams
) -> None:
    publish(1)
    engine.sync_from_store()
    expected = engine.complete(LINEAGE, [PROMPT, "Hello"], params)

    stream = engine.stream(LINEAGE, [PROMPT, "Hello"], params)
    events = list(stream)

    assert stream.served_name == f"{LINEAGE}-v1"
    texts, ends = _read(events)
    assert sum(isinstance(e, TextDelta) for e in events) > 2, "the text came in one piece, not streamed"
    for index, completion in enumerate(expected.completions):
        assert texts.get(index, "") == completion.text == ends[index].completion.text
        assert ends[index].completion.finish_reason == completion.finish_reason


def test_stream_stops_at_a_stop_string(engine: EmbeddedEngine) -> None:
    full = engine.complete(engine.base_model_id, [PROMPT], GREEDY).completions[0].text
    assert len(full) >= 4, "the tiny model's greedy text is too short for this test"
    stop = full[2:4]
    params = GenerationParams(max_tokens=12, stop=(stop,))

    texts, ends = _read(list(engine.stream(engine.base_model_id, [PROMPT], params)))

    assert texts.get(0, "") == full[: full.find(stop)]
    assert ends[0].completion.finish_reason == "stop"


def test_a_failure_mid_stream_is_an_event_and_the_lease_is_released(caplog: pytest.LogCaptureFixture) -> None:
    released = []

    def generate(prompt: str, on_text: Callable[[str], None], cancel: threading.Event) -> Completion:
        on_text("Hello")
        on_text("Hello wor")
        raise RuntimeError(f"device lost while reading {prompt}")

    stream = ThreadedStream("default-v1", [PROMPT], (), generate, lambda: released.append(True)).start()
    events = list(stream)

    assert events[:2] == [TextDelta(0, "Hello"), TextDelta(0, " wor")]
    assert isinstance(events[2], StreamFailure) and PROMPT not in events[2].message
    assert len(events) == 3
    assert released == [True]
    assert "RuntimeError" in caplog.text and PROMPT not in caplog.text


def test_sse_body_of_a_failed_stream_ends_with_an_error_event_then_done() -> None:
    def generate(prompt: str, on_text: Callable[[str], None], cancel: threading.Event) -> Completion:
        on_text("Hi")
        raise RuntimeError("boom")

    stream = ThreadedStream("default-v1", [PROMPT], (), generate, lambda: None).start()
    response = sse_response(stream, "completion", include_usage=True)
    assert response.headers[SERVED_MODEL_HEADER] == "default-v1"
    body = "".join(_events(stream))
    events = [line.removeprefix("data: ") for line in body.split("\n\n") if line]
    assert json.loads(events[0])["choices"][0]["text"] == "Hi"
    assert json.loads(events[1])["error"]["code"] == 500
    assert events[2:] == ["[DONE]"]


def _events(stream: ThreadedStream) -> list[str]:
    from forgetd.serving.sse import _Chunks
    from forgetd.serving.sse import _events as sse_events

    return list(sse_events(stream, _Chunks("completion", stream.served_name), include_usage=True))


def test_closing_a_stream_stops_generation(engine: EmbeddedEngine) -> None:
    stream = engine.stream(engine.base_model_id, [PROMPT, PROMPT], GenerationParams(max_tokens=200))
    stream.close()
    _, ends = _read(list(stream))
    assert len(ends) < 2 or ends[0].completion.completion_tokens < 200


@pytest.mark.parametrize(
    ("snapshots", "stop", "released"),
    [
        (["He", "Hello", "Hello wor", "Hello world"], (), ["He", "llo", " wor", "ld"]),
        (["He", "Hello", "Hello wor", "Hello world"], ("o w",), ["Hel", "l"]),  # "o w" could start: held
        (["ab\ufffd", "abc"], (), ["ab", "c"]),  # a partial character waits
        (["STOP here"], ("STOP",), []),
    ],
)
def test_stop_holdback_releases_only_safe_text(
    snapshots: list[str], stop: tuple[str, ...], released: list[str]
) -> None:
    holdback = StopHoldback(stop)
    assert [d for d in (holdback.update(s) for s in snapshots) if d] == released
