"""Batched greedy decoding, the way verification asks a model what it "knows"."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from peft import PeftModel
from transformers import GenerationConfig, GenerationMixin, PreTrainedTokenizerBase

from forgetd.eval.encoding import pad_token_id
from forgetd.eval.lm import CausalLM, eval_mode

GENERATION_BATCH = 32  # prompts per generate() call: bounds memory on long probe lists


def greedy_completion(model: CausalLM, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                      max_new_tokens: int, min_margin: float | None = None) -> list[str]:
    """Greedy continuation of each prompt, decoded without special tokens (prompt not included); see
    :func:`greedy_token_ids` for ``min_margin``."""
    rows = greedy_token_ids(model, tokenizer, prompts, max_new_tokens, min_margin)
    return list(tokenizer.batch_decode(rows, skip_special_tokens=True))


@torch.no_grad()
def greedy_token_ids(model: CausalLM, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                     max_new_tokens: int, min_margin: float | None = None) -> list[list[int]]:
    """The new token ids of each prompt's greedy continuation, ``max_new_tokens`` or fewer (EOS, padding).

    With ``min_margin`` (nats), a continuation also ends before its first token whose log-probability beat
    the runner-up's by less: where the model had not decided what comes next, and any small change to it
    may pick the other token.

    Prompts are left-padded by hand rather than by flipping ``tokenizer.padding_side``, so a tokenizer
    shared with another thread is never mutated.
    """
    if not isinstance(model, GenerationMixin | PeftModel):
        raise TypeError(f"{type(model).__name__} cannot generate (not a causal LM)")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    pad_id = pad_token_id(tokenizer)
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                              pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id,
                              return_dict_in_generate=True, output_logits=min_margin is not None)
    out: list[list[int]] = []
    with eval_mode(model):
        for start in range(0, len(prompts), GENERATION_BATCH):
            chunk = prompts[start:start + GENERATION_BATCH]
            out += _generate_chunk(model, model.device, tokenizer, chunk, config, pad_id, min_margin)
    return out


def _generate_chunk(model: GenerationMixin | PeftModel, device: torch.device, tokenizer: PreTrainedTokenizerBase,
                    prompts: Sequence[str], config: GenerationConfig, pad_id: int,
                    min_margin: float | None) -> list[list[int]]:
    rows = [list(tokenizer(prompt)["input_ids"]) for prompt in prompts]
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
    generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                               generation_config=config)
    new_tokens = generated.sequences[:, width:].tolist()  # [batch, <= max_new_tokens]
    if min_margin is not None:
        new_tokens = [row[:decided] for row, decided in zip(new_tokens, _decided_lengths(generated.logits, min_margin),
                                                            strict=True)]
    return [_cut_at_eos(row, tokenizer.eos_token_id) for row in new_tokens]


def _decided_lengths(logits: tuple[torch.Tensor, ...], min_margin: float) -> list[int]:
    """Per row, how many greedy tokens in a row beat their runner-up by at least ``min_margin`` nats
    (``logits``: one ``[batch, V]`` tensor per generated token, as generate() returns them)."""
    top = torch.stack(logits, dim=1).float().topk(2, dim=-1).values  # [batch, steps, 2]; softmax keeps the gap
    undecided = (top[..., 0] - top[..., 1]) < min_margin
    steps = undecided.shape[1]
    return torch.where(undecided.any(-1), undecided.float().argmax(-1), steps).tolist()


def _cut_at_eos(row: list[int], eos_id: int | None) -> list[int]:
    # generate() fills a finished row with padding after its EOS; the continuation ends at the EOS.
    return row[:row.index(eos_id)] if eos_id is not None and eos_id in row else row
