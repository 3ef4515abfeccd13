"""Selective Synaptic Dampening, retrain-free, written into the lineage's LoRA adapter."""

from __future__ import annotations

import torch
from peft import PeftModel

from forgetd.unlearning.consolidation import fold_deltas
from forgetd.unlearning.importance import base_weight, diagonal_fisher, lora_factors, lora_modules
from forgetd.unlearning.inputs import StepInputs, UnlearningData
from forgetd.unlearning.methods.base import LossTerms, UnlearningMethod
from forgetd.unlearning.registry import register_method


@register_method("ssd")
class SSD(UnlearningMethod):
    """Dampen the weights far more important to the forget data than to the retain data; no training.

    Foster, Schoepf & Brintrup 2024, "Fast Machine Unlearning Without Retraining Through Selective Synaptic
    Dampening", eqs. 3-4: with diagonal Fisher importances ``F_f`` (forget) and ``F_r`` (retain), every
    weight with ``F_f > alpha * F_r`` is multiplied by ``beta = min(lambda * F_r / F_f, 1)``. Here the
    weights are the base weights under LoRA (plus the adapter's current delta), the change
    ``(beta - 1) * W`` is folded into the adapter by truncated SVD (:mod:`forgetd.unlearning.consolidation`),
    and a retry with strength ``s`` selects with ``alpha / s``.
    """

    trains = False

    def prepare(self, model: PeftModel, data: UnlearningData) -> None:
        forget, retain = diagonal_fisher(model, data.forget), diagonal_fisher(model, data.retain)
        alpha, lam = self.config.ssd_alpha / self.config.strength, self.config.ssd_lambda
        deltas = {}
        for name, module in lora_modules(model).items():
            a, b, scale = lora_factors(module)
            weight = base_weight(module).float() + scale * (b.float() @ a.float())  # what the model uses now
            selected = forget[name] > alpha * retain[name]
            beta = (lam * retain[name] / forget[name].clamp(min=1e-30)).clamp(max=1.0)
            deltas[name] = torch.where(selected, (beta - 1.0) * weight, torch.zeros_like(weight))
        self.consolidation = fold_deltas(model, deltas)

    def loss(self, model: PeftModel, inputs: StepInputs) -> LossTerms:
        raise NotImplementedError("ssd writes its update in prepare() and trains no step")

