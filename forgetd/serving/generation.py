"""One prompt in, one completion out, on a causal LM: tokenising, decoding and stop strings."""

from __future__ import annotations

from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from forgetd.serving.domain import Completion, GenerationParams


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


def encode_prompt(tokenizer: Any, prompt: str, device: torch.device) -> torch.Tensor:
    """Token ids of ``prompt`` as a (1, n) tensor, ready to be continued.

    Special tokens are added (a Llama tokenizer's BOS belongs there) but a trailing EOS is dropped:
    some tokenizers (ByT5) end every sequence with one, and a causal LM would read it as "text over".
    """
    ids: list[int] = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    eos = tokenizer.eos_token_id
    if len(ids) > 1 and eos is not None and ids[-1] == eos:
        ids = ids[:-1]
    return torch.tensor([ids], dtype=torch.long, device=device)


def generate_one(model: Any, tokenizer: Any, prompt: str, params: GenerationParams) -> Completion:
    """Decode one completion; the caller holds the model (its active adapter) for the duration."""
    input_ids = encode_prompt(tokenizer, prompt, model.device)
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
    if params.stop:
        kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnStrings(tokenizer, prompt_len, params.stop)])
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
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    if not cuts:
        return text, False
    return text[: min(cuts)], True
