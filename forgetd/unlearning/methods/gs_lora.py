"""GS-LoRA: a bounded forget term and a group-sparse penalty over each block's LoRA weights."""

from __future__ import annotations

import math

import torch
from peft import PeftModel

from forgetd.eval.likelihood import forward_logits, label_nll
from forgetd.unlearning.importance import layer_of
from forgetd.unlearning.inputs import StepInputs
from forgetd.unlearning.methods.base import LossTerms
from forgetd.unlearning.methods.graddiff import GradDiff
from forgetd.unlearning.registry import register_method


@register_method("gs_lora")
class GSLoRA(GradDiff):
    """``L = ReLU(BND - NLL_forget) + w_r * NLL_retain + w_kl * KL + w_g * sum_l ||LoRA_l||_2``.

    Zhao, Shi, Wang, Liu, Han & Song 2024, "Continual Forgetting for Pre-trained Vision Models" (GS-LoRA),
    eq. 4 (the bounded forget loss, BND here ``log V``: below-uniform likelihood is forgotten enough) and
    eq. 6 (group lasso, one group per decoder block: all of its LoRA A and B weights), so that whole
    blocks' adapters stay at zero unless they are needed.
    """

    def loss(self, model: PeftModel, inputs: StepInputs) -> LossTerms:
        terms = super().loss(model, inputs)
        total = terms.total + self.config.gs_lasso_weight * group_lasso(model)
        return LossTerms(total=total, forget=terms.forget, retain_nll=terms.retain_nll, kl=terms.kl)

    def forget_loss(self, model: PeftModel, inputs: StepInputs) -> torch.Tensor:
        logits = forward_logits(model, inputs.forget)  # [B, T, V]
        nll, mask = label_nll(logits, inputs.forget.labels)  # [B, T-1]
        per_sequence = (nll * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)  # [B] mean token NLL
        return torch.relu(math.log(logits.shape[-1]) - per_sequence).mean()


def group_lasso(model: PeftModel) -> torch.Tensor:
    """Sum over decoder blocks of the L2 norm of all the block's trainable LoRA weights."""
    squares: dict[int, torch.Tensor] = {}
    for name, param in model.named_parameters():
        if param.requires_grad and (".lora_A." in name or ".lora_B." in name):
            layer = layer_of(name)
            squares[layer] = squares.get(layer, 0) + param.float().pow(2).sum()
    return torch.stack([(s + 1e-12).sqrt() for s in squares.values()]).sum()  # eps: no inf gradient at 0
