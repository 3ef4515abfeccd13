"""Which weights carry the forget data: diagonal Fisher importance and layer attribution.

The diagonal Fisher of a weight is estimated, as Selective Synaptic Dampening does (Foster, Schoepf &
Brintrup 2024, "Fast Machine Unlearning Without Retraining Through Selective Synaptic Dampening", eq. 2),
by the squared gradient of the NLL, summed over minibatches. It is taken on the *base* weights that
carry LoRA layers (the adapter's own ``lora_B`` starts at zero, so its gradients say nothing yet), with
the current adapter active, so the importance is that of the model being updated.
"""

from __future__ import annotations

import math
import re
from typing import cast

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from forgetd.eval.encoding import EncodedBatch
from forgetd.eval.likelihood import forward_logits, sequence_nll
from forgetd.eval.lm import eval_mode

FISHER_BATCH = 16  # sequences per backward pass
_LAYER = re.compile(r"\.layers\.(\d+)\.")


def lora_modules(model: PeftModel) -> dict[str, LoraLayer]:
    """Every LoRA-wrapped module by its qualified name."""
    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def base_weight(module: LoraLayer) -> torch.Tensor:
    """The frozen weight under a LoRA layer, ``[out, in]``."""
    return cast(torch.Tensor, module.get_base_layer().weight)


def lora_factors(module: LoraLayer, adapter: str = "default") -> tuple[torch.Tensor, torch.Tensor, float]:
    """``A`` ``[r, in]``, ``B`` ``[out, r]`` and the scale ``s`` of one adapter: its delta is ``s * B @ A``."""
    a = cast(torch.Tensor, module.lora_A[adapter].weight)
    b = cast(torch.Tensor, module.lora_B[adapter].weight)
    return a, b, float(module.scaling[adapter])


def layer_of(name: str) -> int:
    """The decoder layer a module or parameter name belongs to."""
    match = _LAYER.search(name)
    if match is None:
        raise ValueError(f"{name!r} is not inside a decoder layer")
    return int(match.group(1))


def diagonal_fisher(model: PeftModel, batch: EncodedBatch) -> dict[str, torch.Tensor]:
    """Per LoRA-wrapped module, the squared NLL gradient of its base weight summed over ``batch``'s chunks,
    divided by the number of chunks. Base weights get gradients only for the duration of the call."""
    weights = {name: base_weight(module) for name, module in lora_modules(model).items()}
    fisher = {name: torch.zeros_like(w, dtype=torch.float32) for name, w in weights.items()}
    chunks = batch.chunks(FISHER_BATCH)
    with eval_mode(model):
        for w in weights.values():
            w.requires_grad_(True)
        try:
            for chunk in chunks:
                chunk = chunk.to(model.device)
                nll, count = sequence_nll(forward_logits(model, chunk), chunk.labels)
                grads = torch.autograd.grad((nll.sum() / count.sum()), list(weights.values()))
                for name, grad in zip(weights, grads, strict=True):
                    fisher[name] += grad.float().pow(2) / len(chunks)
        finally:
            for w in weights.values():
                w.requires_grad_(False)
    return fisher


def layer_scores(forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor]) -> dict[int, float]:
    """Per decoder layer: its forget importance over its retain importance (both summed over its modules)."""
    forget_sum: dict[int, float] = {}
    retain_sum: dict[int, float] = {}
    for name in forget:
        layer = layer_of(name)
        forget_sum[layer] = forget_sum.get(layer, 0.0) + float(forget[name].sum())
        retain_sum[layer] = retain_sum.get(layer, 0.0) + float(retain[name].sum())
    return {layer: forget_sum[layer] / (retain_sum[layer] + 1e-12) for layer in forget_sum}


def top_layers(scores: dict[int, float], share: float) -> set[int]:
    """The ``share`` of layers (at least one) with the highest scores."""
    count = max(1, math.ceil(share * len(scores)))
    return set(sorted(scores, key=lambda layer: scores[layer], reverse=True)[:count])


def train_only_layers(model: PeftModel, layers: set[int]) -> None:
    """Freeze the adapter's weights outside ``layers``; the adapter keeps every layer (its shape, and so
    its size and the lineage's served format, stay the same from version to version)."""
    for name, param in model.named_parameters():
        if ".lora_A." in name or ".lora_B." in name:
            param.requires_grad_(layer_of(name) in layers)
