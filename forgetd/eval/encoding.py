"""Turning texts and probes into padded token batches with loss labels.

Shared by the metrics here and by the unlearning losses, so that "the completion tokens of a probe" means
the same thing when a probe is trained on and when it is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from forgetd.payload import Probe

IGNORE_INDEX = -100  # label of a position that carries no loss (padding, prompt, special tokens)


class ProbeEncodingError(ValueError):
    """A probe whose completion yields no token of its own (for example an empty completion)."""


@dataclass(frozen=True)
class EncodedBatch:
    """Right-padded token ids, attention mask and labels, all ``[batch, seq]``.

    ``labels[b, t]`` is the token at ``t`` when position ``t`` carries loss, else ``IGNORE_INDEX``; the
    loss of position ``t`` is read from the logits at ``t - 1``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device) -> EncodedBatch:
        return EncodedBatch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))

    def select(self, index: torch.Tensor) -> EncodedBatch:
        """The rows in ``index`` (a 1-D tensor of row numbers)."""
        return EncodedBatch(self.input_ids[index], self.attention_mask[index], self.labels[index])

    def chunks(self, size: int) -> list[EncodedBatch]:
        """Consecutive slices of at most ``size`` rows."""
        return [EncodedBatch(self.input_ids[i:i + size], self.attention_mask[i:i + size], self.labels[i:i + size])
                for i in range(0, len(self), size)]


def join_probe(prompt: str, completion: str) -> str:
    """The probe as one text: prompt and completion separated by one space unless one side has it."""
    if prompt[-1:].isspace() or completion[:1].isspace():
        return prompt + completion
    return f"{prompt} {completion}"


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> EncodedBatch:
    """Every token of each text carries loss (the first has no context, so its label is never read)."""
    rows = [_token_ids(tokenizer, text, max_length) for text in texts]
    return _pad_right(rows, rows, pad_token_id(tokenizer))


def encode_probes(tokenizer: PreTrainedTokenizerBase, probes: Sequence[Probe], max_length: int) -> EncodedBatch:
    """Prompt and completion as one sequence; only the completion's tokens carry loss."""
    rows, labels = [], []
    for probe in probes:
        ids, completion_mask = _probe_tokens(tokenizer, probe, max_length)
        rows.append(ids)
        labels.append([tok if keep else IGNORE_INDEX for tok, keep in zip(ids, completion_mask, strict=True)])
    return _pad_right(rows, labels, pad_token_id(tokenizer))


def concat_batches(batches: Sequence[EncodedBatch]) -> EncodedBatch:
    """The batches' rows stacked, narrower ones right-padded (with masked, unlabelled positions)."""
    if not batches:
        raise ValueError("nothing to concatenate: no batches given")
    width = max(batch.input_ids.shape[1] for batch in batches)

    def widen(t: torch.Tensor, fill: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=fill)

    # Padded ids are masked out and carry no label, so the id itself does not matter: 0 is fine.
    return EncodedBatch(
        torch.cat([widen(b.input_ids, 0) for b in batches]),
        torch.cat([widen(b.attention_mask, 0) for b in batches]),
        torch.cat([widen(b.labels, IGNORE_INDEX) for b in batches]),
    )


def completion_token_count(tokenizer: PreTrainedTokenizerBase, probe: Probe) -> int:
    """How many tokens the probe's completion takes when it follows its prompt."""
    _, completion_mask = _probe_tokens(tokenizer, probe, max_length=None)
    return sum(completion_mask)


def _probe_tokens(tokenizer: PreTrainedTokenizerBase, probe: Probe,
                  max_length: int | None) -> tuple[list[int], list[bool]]:
    # Character offsets decide which tokens belong to the completion, so a tokenizer that merges the
    # space before the completion into a token (byte-level BPE does) is handled like one that does not.
    text = join_probe(probe.prompt, probe.completion)
    enc = tokenizer(text, return_offsets_mapping=True, truncation=max_length is not None, max_length=max_length)
    special = set(tokenizer.all_special_ids)
    ids = list(enc["input_ids"])
    completion_mask = [end > len(probe.prompt) and tok not in special
                       for tok, (_, end) in zip(ids, enc["offset_mapping"], strict=True)]
    if not any(completion_mask):
        raise ProbeEncodingError(f"probe completion of {len(probe.completion)} chars yields no token "
                                 f"within max_length={max_length}")
    return ids, completion_mask


def _token_ids(tokenizer: PreTrainedTokenizerBase, text: str, max_length: int) -> list[int]:
    return list(tokenizer(text, truncation=True, max_length=max_length)["input_ids"])


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id used for padding: the pad token, or EOS when the tokenizer has none."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("tokenizer has neither a pad nor an eos token")
    return int(pad)


def _pad_right(rows: list[list[int]], labels: list[list[int]], pad_id: int) -> EncodedBatch:
    if not rows:
        raise ValueError("nothing to encode: no texts or probes given")
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    lab = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, (row, row_labels) in enumerate(zip(rows, labels, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        lab[i, : len(row)] = torch.tensor(row_labels)
    return EncodedBatch(ids, mask, lab)
