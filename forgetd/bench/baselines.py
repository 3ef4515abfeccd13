"""Full-parameter unlearning baselines, the way open-unlearning runs them on TOFU.

Every weight is trained (no adapter), for a fixed number of epochs over the batch's forget set with one
retain example drawn per forget example (open-unlearning's ``ForgetRetainDataset``), AdamW with weight
decay 0.01 and a linear warm-up over the first epoch (``configs/trainer/*.yaml`` and
``configs/experiment/unlearn/tofu/default.yaml``). Forget and retain sequences are question and answer
with the loss on the answer only, as TOFU's collator builds them. The objectives
(``src/trainer/unlearn/``):

- ``full_ga``: gradient ascent, ``L = -NLL_forget`` (Jang et al. 2023).
- ``full_graddiff``: ``L = -gamma * NLL_forget + alpha * NLL_retain`` (Liu et al. 2022), gamma = alpha = 1.
- ``full_npo``: ``L = gamma * (-2 / beta) * mean log sigmoid(-beta * log(pi / pi_ref)) + alpha * NLL_retain``
  (Zhang et al. 2024) with beta = 0.1, the reference being the model before this batch.

These are the research baselines forgetd's adapters are compared against, not forgetd's own methods
(which run through :func:`forgetd.unlearning.unlearn_batch` in the benchmark, exactly as in the worker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from forgetd.eval.encoding import EncodedBatch, encode_probes
from forgetd.eval.likelihood import forward_logits, label_nll, sequence_nll
from forgetd.eval.lm import eval_mode
from forgetd.unlearning import UnlearningBatch

Objective = Literal["ga", "graddiff", "npo"]
FULL_BASELINES: dict[str, Objective] = {"full_ga": "ga", "full_graddiff": "graddiff", "full_npo": "npo"}
MAX_SEQ_LEN = 256


@dataclass(frozen=True)
class FullRecipe:
    """Optimisation of the full-parameter baselines (open-unlearning's TOFU defaults but the learning rate,
    which the benchmark scales to the base model: see ``forgetd.bench.profiles``)."""

    learning_rate: float = 1e-5
    epochs: int = 10
    batch_size: int = 16  # open-unlearning: 4 per device x 4 accumulation steps
    weight_decay: float = 0.01
    npo_beta: float = 0.1
    forget_weight: float = 1.0  # gamma
    retain_weight: float = 1.0  # alpha


class FullParameterBaseline:
    """One full-parameter model unlearning a stream of batches, each batch a fresh optimiser run."""

    def __init__(self, objective: Objective, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 recipe: FullRecipe, seed: int) -> None:
        if objective not in ("ga", "graddiff", "npo"):
            raise ValueError(f"unknown objective {objective!r}; known: ga, graddiff, npo")
        self.objective = objective
        self.model = model
        self.tokenizer = tokenizer
        self.recipe = recipe
        self.generator = torch.Generator().manual_seed(seed)
        for p in self.model.parameters():
            p.requires_grad_(p.is_floating_point())

    def unlearn(self, batch: UnlearningBatch) -> int:
        """Run the recipe's epochs on ``batch``; returns the optimiser steps taken."""
        device = self.model.device
        forget = encode_probes(self.tokenizer, batch.forget_probes, MAX_SEQ_LEN)
        retain = encode_probes(self.tokenizer, batch.retain_probes, MAX_SEQ_LEN) if batch.retain_probes else None
        ref_nll = self._reference_nll(forget) if self.objective == "npo" else None
        steps_per_epoch = math.ceil(len(forget) / self.recipe.batch_size)
        total = steps_per_epoch * self.recipe.epochs
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.recipe.learning_rate, weight_decay=self.recipe.weight_decay)
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / steps_per_epoch))
        self.model.train()
        for _ in range(self.recipe.epochs):
            order = torch.randperm(len(forget), generator=self.generator)
            for start in range(0, len(forget), self.recipe.batch_size):
                rows = order[start:start + self.recipe.batch_size]
                loss = self._loss(forget.select(rows).to(device), None if ref_nll is None else ref_nll[rows],
                                  self._retain_rows(retain, len(rows), device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                warmup.step()
        self.model.eval()
        return total

    def _loss(self, forget: EncodedBatch, ref_nll: torch.Tensor | None, retain: EncodedBatch | None) -> torch.Tensor:
        logits = forward_logits(self.model, forget)
        if self.objective == "npo":
            assert ref_nll is not None  # computed for npo in unlearn()
            nll, _ = sequence_nll(logits, forget.labels)  # [B] summed over answer tokens
            log_ratio = ref_nll.to(nll.device) - nll  # log pi(y|x) - log pi_ref(y|x)
            forget_loss = -(2.0 / self.recipe.npo_beta) * F.logsigmoid(-self.recipe.npo_beta * log_ratio).mean()
        else:
            nll, mask = label_nll(logits, forget.labels)
            forget_loss = -(nll.sum() / mask.sum())  # ascent: the mean answer-token NLL, negated
        if self.objective == "ga":
            return forget_loss
        forget_term = self.recipe.forget_weight * forget_loss
        if retain is None:
            return forget_term
        retain_nll, retain_mask = label_nll(forward_logits(self.model, retain), retain.labels)
        return forget_term + self.recipe.retain_weight * retain_nll.sum() / retain_mask.sum()

    def _retain_rows(self, retain: EncodedBatch | None, count: int, device: torch.device) -> EncodedBatch | None:
        if retain is None:
            return None
        rows = torch.randint(len(retain), (count,), generator=self.generator)  # one retain example per forget one
        return retain.select(rows).to(device)

    @torch.no_grad()
    def _reference_nll(self, forget: EncodedBatch) -> torch.Tensor:
        out = []
        with eval_mode(self.model):
            for chunk in forget.chunks(32):
                chunk = chunk.to(self.model.device)
                out.append(sequence_nll(forward_logits(self.model, chunk), chunk.labels)[0].cpu())
        return torch.cat(out)
