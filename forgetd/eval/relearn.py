"""The relearning attack: fine-tune a little on part of the forgotten data, see what else comes back.

Hu et al. 2025 ("Unlearning or Obfuscating? Jogging the Memory of Unlearned LLMs via Benign Relearning")
and Lynch et al. 2024 ("Eight Methods to Evaluate Robust Unlearning in LLMs", sec. 4.5): knowledge that an
update only suppressed returns after a few steps on *related* data, while a model that never learned it
(the retrained, gold model) only learns what it is shown. So the attack trains on one half of the
forgotten facts and measures recall on the other half, for the unlearned model and the gold model alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from forgetd.eval.encoding import encode_texts
from forgetd.eval.fact_recall import fact_recall
from forgetd.eval.facts import QAFact
from forgetd.eval.likelihood import language_modelling_step
from forgetd.eval.lm import CausalLM, merged_copy

MAX_TEXT_TOKENS = 256


@dataclass(frozen=True)
class RelearnAttack:
    """How hard the attacker fine-tunes: full-parameter AdamW, ``steps`` minibatches of ``batch_size``."""

    steps: int = 10
    learning_rate: float = 1e-4
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError(f"steps, batch_size and learning_rate must be positive, got {self}")


@dataclass(frozen=True)
class RelearnResult:
    """Recall of the held-back facts before and after the attack."""

    recall_before: float
    recall_after: float

    @property
    def recovery(self) -> float:
        """How much recall the attack brought back (after minus before)."""
        return self.recall_after - self.recall_before


def relearned_copy(model: CausalLM, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                   attack: RelearnAttack) -> PreTrainedModel:
    """A merged copy of ``model`` fine-tuned on ``texts`` (every token carries loss); ``model`` is untouched."""
    if not texts:
        raise ValueError("the relearning attack needs at least one text to train on")
    attacked = merged_copy(model).float()  # bf16 weights would round small fine-tuning updates away
    batch = encode_texts(tokenizer, texts, MAX_TEXT_TOKENS)
    params = [p for p in attacked.parameters() if p.is_floating_point()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=attack.learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(attack.seed)
    attacked.train()
    for _ in range(attack.steps):
        rows = torch.randperm(len(batch), generator=generator)[:attack.batch_size]
        step = batch.select(rows).to(attacked.device)
        language_modelling_step(attacked, step, optimizer)
    attacked.eval()
    return attacked


def relearn_recovery(model: CausalLM, tokenizer: PreTrainedTokenizerBase, train_texts: Sequence[str],
                     held_back: Sequence[QAFact], attack: RelearnAttack) -> RelearnResult:
    """Recall of ``held_back`` facts (prompt or paraphrase) before and after relearning ``train_texts``."""
    before = fact_recall(model, tokenizer, held_back).recall
    attacked = relearned_copy(model, tokenizer, train_texts, attack)
    after = fact_recall(attacked, tokenizer, held_back).recall
    del attacked
    return RelearnResult(recall_before=before, recall_after=after)
