"""Gradient ascent: push the forget sequences' likelihood down, nothing else."""

from __future__ import annotations

import torch
from peft import PeftModel

from forgetd.unlearning.inputs import StepInputs
from forgetd.unlearning.methods.base import LossTerms
from forgetd.unlearning.methods.graddiff import GradDiff
from forgetd.unlearning.registry import register_method


@register_method("ga")
class GradientAscent(GradDiff):
    """``L = -NLL_forget`` (Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy Risks in Language
    Models", sec. 3), with GradDiff's per-token cap at ``log V`` and no retain term: the reference point of
    what ascent alone does to the rest of the model."""

    def loss(self, model: PeftModel, inputs: StepInputs) -> LossTerms:
        forget = self.forget_loss(model, inputs)
        zero = torch.zeros((), device=forget.device)
        return LossTerms(total=forget, forget=forget, retain_nll=zero, kl=zero)
