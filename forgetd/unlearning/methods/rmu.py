"""RMU: scramble a middle layer's activations on forget text, keep them on retain text."""

from __future__ import annotations

import torch
from peft import PeftModel

from forgetd.eval.encoding import EncodedBatch
from forgetd.eval.lm import eval_mode
from forgetd.unlearning.importance import layer_of, lora_modules, train_only_layers
from forgetd.unlearning.inputs import REFERENCE_BATCH, StepInputs, UnlearningData
from forgetd.unlearning.methods.base import LossTerms, UnlearningMethod
from forgetd.unlearning.registry import register_method

STEERED_LAYERS = 3  # RMU trains the steered layer and the two before it


@register_method("rmu")
class RMU(UnlearningMethod):
    """``L = ||h_l(x_f) - c * u||^2 + w_r * ||h_l(x_r) - h_l^ref(x_r)||^2`` (per-token, normalised).

    Li et al. 2024, "The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning", sec. 5.2:
    ``h_l`` is the output of decoder layer ``l``, ``u`` a fixed random unit vector, ``c`` the steering
    coefficient; only layers ``l - 2 .. l`` move. Here ``c`` is ``config.rmu_steering`` times the mean
    activation norm of the reference on the forget text (the paper's absolute ``c`` suits one 7B model),
    and both squared distances are divided by that norm squared so ``retain_weight`` is scale-free.
    """

    def prepare(self, model: PeftModel, data: UnlearningData) -> None:
        layers = 1 + max(layer_of(name) for name in lora_modules(model))
        self.layer = self.config.rmu_layer if self.config.rmu_layer is not None else layers // 2
        if self.layer >= layers:
            raise ValueError(f"rmu_layer {self.layer} is past the model's {layers} layers")
        train_only_layers(model, set(range(max(0, self.layer - STEERED_LAYERS + 1), self.layer + 1)))
        with torch.no_grad(), eval_mode(model):
            forget_ref = self._hidden(model, data.forget)
            self.retain_ref = self._hidden(model, data.retain)  # [N_r, T_r, H]
        mask = data.forget.attention_mask.bool()
        self.scale = forget_ref[mask].norm(dim=-1).mean().clamp(min=1e-6)
        generator = torch.Generator().manual_seed(self.config.seed)
        u = torch.rand(forget_ref.shape[-1], generator=generator)  # RMU draws u from U(0, 1), then normalises
        self.control = (self.config.rmu_steering * self.scale * u / u.norm()).to(forget_ref.device)

    def loss(self, model: PeftModel, inputs: StepInputs) -> LossTerms:
        forget_h = self._hidden(model, inputs.forget)
        forget_mask = inputs.forget.attention_mask.bool()
        forget = (forget_h[forget_mask] - self.control).pow(2).sum(-1).mean() / self.scale ** 2
        retain_h = self._hidden(model, inputs.retain)
        retain_ref = self.retain_ref[inputs.retain_rows.to(self.retain_ref.device)]
        retain_mask = inputs.retain.attention_mask.bool()
        retain = (retain_h[retain_mask] - retain_ref[retain_mask]).pow(2).sum(-1).mean() / self.scale ** 2
        total = forget + self.config.retain_weight * retain
        return LossTerms(total=total, forget=forget, retain_nll=retain, kl=torch.zeros_like(total))

    def _hidden(self, model: PeftModel, batch: EncodedBatch) -> torch.Tensor:
        # hidden_states[0] is the embeddings, so layer l's output is hidden_states[l + 1]: [B, T, H] float32
        outs = [model(input_ids=chunk.input_ids, attention_mask=chunk.attention_mask, output_hidden_states=True)
                .hidden_states[self.layer + 1].float() for chunk in batch.chunks(REFERENCE_BATCH)]
        return torch.cat(outs)
