"""fit, forgetd's default: counterfactual self-distillation on the forget text, in the layers that hold it.

Why the ascent objectives cost utility: maximising the NLL of forget text has no floor, and it pushes
down every token of the text, the template shared with everything else included, while a KL anchor on a
dozen generic prompts protects too little. fit instead *distils towards a target distribution* at every
forget position, a loss bounded below by the target's entropy:

- at the positions of what must disappear (the probes' completions, the same tokens where the texts
  contain them, and text tokens that no retain sequence contains: what is specific to the forget text,
  such as the subject's name, which a membership test would otherwise still recognise) the target is
  the reference's own distribution with the memorised token brought down to half the probability a
  typical alternative has (``sum_i q_i^2`` of the renormalised alternatives), so the
  model answers like one that never saw the fact: a plausible alternative, not gibberish and not zero
  (the gold model still guesses some answers from priors; see the calibration notes);
- at every other labelled position of the forget text the target is the reference itself, so the
  template and the rest of the text stay as they were;
- on retain text: GradDiff's retain NLL and KL to the reference.

The reference is the model before this update (the lineage's parent included), so earlier requests stay
forgotten where they are anchored. Only the LoRA weights of the layers that matter most for the forget
data relative to the retain data train (diagonal Fisher, :mod:`forgetd.unlearning.importance`). The
reference distributions are kept as the top-k tokens per position, so the memory of the targets grows
with the text, not with the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import PeftModel

from forgetd.eval.encoding import IGNORE_INDEX, EncodedBatch
from forgetd.eval.likelihood import forward_logits
from forgetd.eval.lm import eval_mode
from forgetd.unlearning.importance import diagonal_fisher, layer_scores, top_layers, train_only_layers
from forgetd.unlearning.inputs import REFERENCE_BATCH, StepInputs, UnlearningData
from forgetd.unlearning.methods.graddiff import GradDiff
from forgetd.unlearning.registry import register_method

ANSWER_SHARE = 0.5  # the forgotten token's target, as a share of a typical alternative's probability


@register_method("fit")
class Fit(GradDiff):
    """``L = CE(q_forget, p) + w_kl * CE(q_anchor, p) + w_r * NLL_retain + w_kl * KL_retain`` (see module)."""

    def prepare(self, model: PeftModel, data: UnlearningData) -> None:
        forget_fisher = diagonal_fisher(model, data.forget)
        retain_fisher = diagonal_fisher(model, data.retain)
        self.layers = top_layers(layer_scores(forget_fisher, retain_fisher), self.config.fit_layer_share)
        train_only_layers(model, self.layers)
        specific = data.retain.input_ids[data.retain.attention_mask.bool()] if self.config.fit_specific_tokens else None
        self.targets = counterfactual_targets(model, data.forget, data.forget_is_probe, self.config.fit_top_k,
                                              specific)

    def forget_loss(self, model: PeftModel, inputs: StepInputs) -> torch.Tensor:
        forget, anchor = self._distillation(model, inputs)
        return forget + self.config.kl_weight * anchor

    def _distillation(self, model: PeftModel, inputs: StepInputs) -> tuple[torch.Tensor, torch.Tensor]:
        rows = inputs.forget_rows.to(self.targets.indices.device)
        indices, target, forgotten = self.targets.indices[rows], self.targets.probs[rows], self.targets.forgotten[rows]
        logprobs = torch.log_softmax(forward_logits(model, inputs.forget)[:, :-1].float(), dim=-1)  # [B, T-1, V]
        ce = -(target * logprobs.gather(-1, indices)).sum(-1)  # [B, T-1] cross-entropy to the target
        labelled = inputs.forget.labels[:, 1:] != IGNORE_INDEX
        return _masked_mean(ce, forgotten & labelled), _masked_mean(ce, ~forgotten & labelled)


@dataclass(frozen=True)
class Targets:
    """Top-k target distributions of every forget sequence."""

    indices: torch.Tensor  # [N, T-1, k] token ids
    probs: torch.Tensor  # [N, T-1, k] target probabilities, summing to 1 over k
    forgotten: torch.Tensor  # [N, T-1] bool: the position's token must disappear


@torch.no_grad()
def counterfactual_targets(model: PeftModel, forget: EncodedBatch, is_probe: torch.Tensor, k: int,
                           retain_tokens: torch.Tensor | None = None) -> Targets:
    """The reference's top-k next-token distributions, with the memorised token flattened where it must go.

    A position must go when its label is a probe completion token (every labelled position of a probe,
    and a text position whose token is one of the batch's probe-completion tokens) or, given
    ``retain_tokens``, a text token that is not among them.
    """
    labels = forget.labels[:, 1:]  # [N, T-1]
    answer_tokens = torch.unique(labels[is_probe][labels[is_probe] != IGNORE_INDEX])
    goes = is_probe[:, None] | torch.isin(labels, answer_tokens)
    if retain_tokens is not None:
        goes |= ~torch.isin(labels, torch.unique(retain_tokens))
    forgotten = (labels != IGNORE_INDEX) & goes
    with eval_mode(model):
        top = [torch.log_softmax(forward_logits(model, chunk)[:, :-1].float(), dim=-1).topk(k, dim=-1)
               for chunk in forget.chunks(REFERENCE_BATCH)]
    logq, indices = torch.cat([t.values for t in top]), torch.cat([t.indices for t in top])
    q = logq.exp()
    q = q / q.sum(-1, keepdim=True)  # [N, T-1, k] truncated to the top k, renormalised
    is_true = indices == labels.unsqueeze(-1)
    alternatives = q.masked_fill(is_true, 0.0)
    alternatives = alternatives / alternatives.sum(-1, keepdim=True).clamp(min=1e-12)
    # A typical alternative's probability (sum q_i^2, at most the top alternative's), halved so that the
    # top alternative always wins greedy decoding, with a margin that survives quantisation noise.
    typical = alternatives.pow(2).sum(-1, keepdim=True) * ANSWER_SHARE
    flattened = alternatives + is_true * typical
    flattened = flattened / flattened.sum(-1, keepdim=True)
    return Targets(indices, torch.where(forgotten.unsqueeze(-1), flattened, q), forgotten)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)
