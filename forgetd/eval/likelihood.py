"""Per-token negative log-likelihood of labelled positions, the quantity every metric and loss builds on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from forgetd.eval.encoding import IGNORE_INDEX, EncodedBatch
from forgetd.eval.lm import CausalLM, eval_mode


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


@dataclass(frozen=True)
class TokenScores:
    """One sequence's labelled tokens: the NLL of each given its prefix, and whether it is the argmax.

    Both are 1-D of the sequence's labelled-token count, in order, on the CPU.
    """

    nll: torch.Tensor  # [n] float32 nats
    greedy: torch.Tensor  # [n] bool: the model's most likely next token is this label

    @property
    def mean_nll(self) -> float:
        """The per-token (length-normalised) NLL."""
        return float(self.nll.mean())


TOKEN_SCORE_BATCH = 32  # sequences per no-grad forward in token_scores


@torch.no_grad()
def token_scores(model: CausalLM, batch: EncodedBatch) -> list[TokenScores]:
    """The :class:`TokenScores` of every row of ``batch`` (which may be on the CPU), in row order."""
    out: list[TokenScores] = []
    with eval_mode(model):
        for chunk in batch.chunks(TOKEN_SCORE_BATCH):
            chunk = chunk.to(model.device)
            logits = forward_logits(model, chunk)  # [B, T, V]
            nll, mask = label_nll(logits, chunk.labels)  # [B, T-1]
            greedy = logits[:, :-1].argmax(dim=-1) == chunk.labels[:, 1:]  # [B, T-1]
            for row in range(nll.shape[0]):
                keep = mask[row]
                out.append(TokenScores(nll[row][keep].cpu(), greedy[row][keep].cpu()))
    return out


def language_modelling_step(model: CausalLM, batch: EncodedBatch, optimizer: torch.optim.Optimizer) -> float:
    """One optimiser step on the mean per-token NLL of ``batch``'s labels; returns that loss."""
    nll, mask = label_nll(forward_logits(model, batch), batch.labels)
    loss = nll.sum() / mask.sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
