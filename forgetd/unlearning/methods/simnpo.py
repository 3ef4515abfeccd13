"""SimNPO: NPO without a reference model, on the length-normalised likelihood and with a margin."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft import PeftModel

from forgetd.eval.likelihood import forward_logits, sequence_nll
from forgetd.unlearning.inputs import StepInputs
from forgetd.unlearning.methods.graddiff import GradDiff
from forgetd.unlearning.registry import register_method


@register_method("simnpo")
class SimNPO(GradDiff):
    """``L_forget = -(2 / beta) * mean log sigmoid(beta * (NLL(y|x) / |y| - delta))``.

    Fan, Liu, Lin, Jia, Zhang, Mei & Liu 2024, "Simplicity Prevails: Rethinking Negative Preference
    Optimization for LLM Unlearning", eq. 4 (as open-unlearning's ``SimNPO`` computes it). Normalising by
    the length stops long sequences from dominating, and no reference likelihood is needed. Retain terms
    are GradDiff's.
    """

    def forget_loss(self, model: PeftModel, inputs: StepInputs) -> torch.Tensor:
        nll, count = sequence_nll(forward_logits(model, inputs.forget), inputs.forget.labels)  # [B], [B]
        per_token = nll / count.clamp(min=1)
        beta = self.config.npo_beta
        return -(2.0 / beta) * F.logsigmoid(beta * (per_token - self.config.simnpo_delta)).mean()
