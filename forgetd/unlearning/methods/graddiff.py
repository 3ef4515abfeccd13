"""Gradient difference: push the forget sequences' likelihood down, keep the retain sequences'."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from peft import PeftModel

from forgetd.eval.likelihood import forward_logits, label_nll
from forgetd.unlearning.inputs import StepInputs
from forgetd.unlearning.methods.base import LossTerms, UnlearningMethod
from forgetd.unlearning.registry import register_method


@register_method("graddiff")
class GradDiff(UnlearningMethod):
    """``L = L_forget + w_r * NLL_retain + w_kl * KL(p_ref || p_theta)`` on the retain inputs.

    Gradient difference (Liu, Liu & Stone 2022, "Continual Learning and Private Unlearning", sec. 4;
    the GradDiff and KL baselines of TOFU, Maini et al. 2024, sec. 5) with both regularisers at once.
    Here ``L_forget`` is the negated forget NLL; subclasses change only :meth:`forget_loss`.
    """

    def loss(self, model: PeftModel, inputs: StepInputs) -> LossTerms:
        forget = self.forget_loss(model, inputs)
        retain_nll, kl = self.retain_terms(model, inputs)
        total = forget + self.config.retain_weight * retain_nll + self.config.kl_weight * kl
        return LossTerms(total=total, forget=forget, retain_nll=retain_nll, kl=kl)

    def forget_loss(self, model: PeftModel, inputs: StepInputs) -> torch.Tensor:
        """Negated mean per-token forget NLL, each token's NLL clamped at ``log V``.

        Plain ascent is unbounded (the NLL can grow forever, wrecking the model); once a token's
        probability is below uniform (``NLL > log V``) it is forgotten enough and its gradient stops.
        """
        logits = forward_logits(model, inputs.forget)  # [B, T, V]
        nll, mask = label_nll(logits, inputs.forget.labels)  # [B, T-1]
        capped = nll.clamp(max=math.log(logits.shape[-1]))
        return -(capped * mask).sum() / mask.sum()

    def retain_terms(self, model: PeftModel, inputs: StepInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean per-token retain NLL, and the mean per-position KL to the reference on the same inputs."""
        logits = forward_logits(model, inputs.retain)  # [B, T, V]
        nll, mask = label_nll(logits, inputs.retain.labels)
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # [B, T-1, V]
        # KL(p_ref || p_theta) summed over the vocabulary, at every position whose next token is real.
        kl = F.kl_div(logprobs, self.retain_reference(inputs), log_target=True, reduction="none").sum(-1)
        positions = inputs.retain.attention_mask[:, 1:].bool()
        return nll.sum() / mask.sum(), kl[positions].mean()

    def retain_reference(self, inputs: StepInputs) -> torch.Tensor:
        """``[B, T-1, V]`` the reference's log-distributions the retain KL holds the model to (float32)."""
        return inputs.retain_ref_logprobs.float()
