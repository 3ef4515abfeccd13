"""One prompt in, one completion out, on a causal LM: tokenising, decoding, stop strings and streaming."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from forgetd.serving.domain import Completion, GenerationParams
from forgetd.serving.streaming import earliest_stop


class _StopOnStrings(StoppingCriteria):
    """Ends generation once the decoded new text contains a stop string (batch of one)."""

    def __init__(self, tokenizer: Any, prompt_len: int, stop: tuple[str, ...]) -> None:
        self._tokenizer = tokenizer
        self._prompt_len = prompt_len
        self._stop = stop

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        text = self._tokenizer.decode(input_ids[0, self._prompt_len :], skip_special_tokens=True)
        done = any(s in text for s in self._stop)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


class _Cancelled(StoppingCriteria):
    """Ends generation once the reader of a stream has gone away."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        done = self._cancel.is_set()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


class SnapshotStreamer(BaseStreamer):
    """A transformers streamer that hands ``emit`` the whole completion decoded so far, after each token.

    Decoding everything each time (as :class:`_StopOnStrings` does anyway) keeps every snapshot a prefix
    of the final text, except for a trailing partial character, which the reader holds back; decoding
    only the new tokens, as ``TextIteratorStreamer`` does, can split a word differently from the end.
    """

    def __init__(self, tokenizer: Any, emit: Callable[[str], None]) -> None:
        self._tokenizer = tokenizer
        self._emit = emit
        self._ids: list[int] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        self._ids.extend(int(i) for i in value.reshape(-1).tolist())
        self._emit(self._tokenizer.decode(self._ids, skip_special_tokens=True))

    def end(self) -> None:
        """Nothing to flush: the caller reads the final text from the returned completion."""


def encode_prompt(tokenizer: Any, prompt: str, device: torch.device, *, templated: bool = False) -> torch.Tensor:
    """Token ids of ``prompt`` as a (1, n) tensor, ready to be continued.

    Special tokens are added (a Llama tokenizer's BOS belongs there) unless ``templated``: a chat
    template writes its own. A trailing EOS is dropped: some tokenizers (ByT5) end every sequence with
    one, and a causal LM would read it as "text over".
    """
    ids: list[int] = tokenizer(prompt, add_special_tokens=not templated)["input_ids"]
    eos = tokenizer.eos_token_id
    if len(ids) > 1 and eos is not None and ids[-1] == eos:
        ids = ids[:-1]
    return torch.tensor([ids], dtype=torch.long, device=device)


def generate_one(
    model: Any,
    tokenizer: Any,
    prompt: str,
    params: GenerationParams,
    *,
    templated: bool = False,
    streamer: SnapshotStreamer | None = None,
    cancel: threading.Event | None = None,
) -> Completion:
    """Decode one completion; the caller holds the model (its active adapter) for the duration.

    ``templated``: the prompt is a rendered chat template. ``streamer`` sees the text as it grows;
    ``cancel`` ends generation early (the completion then ends with ``finish_reason="stop"``).
    """
    input_ids = encode_prompt(tokenizer, prompt, model.device, templated=templated)
    prompt_len = input_ids.shape[1]
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_tokens,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    }
    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        if params.seed is not None:
            torch.manual_seed(params.seed)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    criteria: list[StoppingCriteria] = []
    if params.stop:
        criteria.append(_StopOnStrings(tokenizer, prompt_len, params.stop))
    if cancel is not None:
        criteria.append(_Cancelled(cancel))
    if criteria:
        kwargs["stopping_criteria"] = StoppingCriteriaList(criteria)
    if streamer is not None:
        kwargs["streamer"] = streamer
    with torch.inference_mode():
        output = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
    new_ids = output[0, prompt_len:]
    text, stopped = _cut_at_stop(tokenizer.decode(new_ids, skip_special_tokens=True), params.stop)
    ended_early = len(new_ids) < params.max_tokens
    return Completion(
        text=text,
        finish_reason="stop" if stopped or ended_early else "length",
        prompt_tokens=prompt_len,
        completion_tokens=len(new_ids),
    )


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """``text`` up to (not including) the earliest stop string, and whether one was found."""
    cut = earliest_stop(text, stop)
    if cut is None:
        return text, False
    return text[:cut], True
