"""Per-token negative log-likelihood of labelled positions, the quantity every metric and loss builds on."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from forgetd.eval.encoding import IGNORE_INDEX, EncodedBatch
from forgetd.eval.lm import CausalLM


def forward_logits(model: CausalLM, batch: EncodedBatch) -> torch.Tensor:
    """Logits ``[batch, seq, vocab]`` of ``model`` on ``batch`` (already on the model's device)."""
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def label_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL of each labelled token given its prefix, and the mask of labelled positions.

    ``logits`` ``[B, T, V]`` and ``labels`` ``[B, T]`` give ``nll`` and ``mask``, both ``[B, T-1]``: the
    logits at ``t`` predict the label at ``t + 1``. Unlabelled positions hold 0 in ``nll``. Computed in
    float32 whatever the model's dtype, since bf16 log-softmax loses the small differences unlearning
    is about.
    """
    targets = labels[:, 1:]
    nll = F.cross_entropy(
        logits[:, :-1].float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    ).view_as(targets)
    return nll, targets != IGNORE_INDEX


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL of each sequence's labelled tokens and their count, both ``[B]``."""
    nll, mask = label_nll(logits, labels)
    return nll.sum(dim=1), mask.sum(dim=1)
