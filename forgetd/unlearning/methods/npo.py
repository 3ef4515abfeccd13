"""Negative preference optimisation: forget by treating the forget sequences as dispreferred answers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft import PeftModel

from forgetd.eval.likelihood import forward_logits, sequence_nll
from forgetd.unlearning.inputs import StepInputs
from forgetd.unlearning.methods.graddiff import GradDiff
from forgetd.unlearning.registry import register_method


@register_method("npo")
class NPO(GradDiff):
    """``L_forget = -(2 / beta) * mean log sigmoid(-beta * log(pi_theta(y|x) / pi_ref(y|x)))``.

    Zhang, Lin, Bai & Mei 2024, "Negative Preference Optimization: From Catastrophic Collapse to
    Effective Unlearning", eq. 3 (DPO with the forget answer as the losing response and no winner). The
    loss saturates once the sequence is much less likely than under the reference, so unlike plain ascent
    it cannot run away. Retain terms are GradDiff's.
    """

    def forget_loss(self, model: PeftModel, inputs: StepInputs) -> torch.Tensor:
        nll, _ = sequence_nll(forward_logits(model, inputs.forget), inputs.forget.labels)  # [B] summed NLL
        log_ratio = inputs.forget_ref_nll - nll  # log pi_theta(y|x) - log pi_ref(y|x), [B]
        beta = self.config.npo_beta
        return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()
