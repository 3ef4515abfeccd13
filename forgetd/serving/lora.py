"""A lean LoRA layer for serving: a base ``nn.Linear`` plus the selected version's low-rank update.

peft's LoRA layer is built for training (dropout, DoRA, mixed batches, merge bookkeeping): its forward
costs five module calls and a dozen checks per projection, which on a small model on CPU took adapter
mode to 0.67x of the base's tokens/s (benchmarks/serving_throughput.py). Serving needs one thing:
``y = x W^T + b + scale * (x A^T) B^T`` for the version selected, as vLLM's LoRA layers do. This layer
computes the base projection itself (no extra module call) and adds the update with one ``addmm_``.

Only what vLLM serves is accepted: plain LoRA on linear projections (no DoRA, no ``fan_in_fan_out``, no
``modules_to_save``, no LoRA bias, no per-module rank or alpha patterns); anything else is refused, by
name, before it touches the model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional

ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
_PEFT_PREFIX = "base_model.model."
_A_SUFFIX, _B_SUFFIX = ".lora_A.weight", ".lora_B.weight"
# adapter_config.json fields whose non-default value changes the computation this layer does not do.
_UNSUPPORTED: dict[str, object] = {"use_dora": False, "fan_in_fan_out": False, "modules_to_save": None,
                                   "lora_bias": False, "rank_pattern": {}, "alpha_pattern": {}}


class UnsupportedAdapterError(ValueError):
    """The saved adapter uses a LoRA feature the serving layer does not compute."""


@dataclass(frozen=True)
class LoraUpdate:
    """One version's update of one projection: ``a`` (r, in), ``b`` (out, r), and alpha/r (or /sqrt r)."""

    a_t: torch.Tensor  # (in, r): A transposed, contiguous, so the hot path is two plain matmuls
    b_t: torch.Tensor  # (r, out)
    scale: float


class Selection:
    """The version the next forward applies (None: the base); set only under the generation lock."""

    def __init__(self) -> None:
        self.name: str | None = None


class ServingLoraLinear(nn.Module):
    """Replaces one ``nn.Linear``: shares its weight and bias, and holds each loaded version's update."""

    def __init__(self, base: nn.Linear, selection: Selection) -> None:
        super().__init__()
        self.weight = base.weight
        self.bias = base.bias
        self.updates: dict[str, LoraUpdate] = {}
        self._selection = selection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.linear(x, self.weight, self.bias)
        name = self._selection.name
        update = self.updates.get(name) if name is not None else None
        if update is None:
            return y
        # y (..., out) += scale * (x A^T) B^T, in place on y's fresh, contiguous buffer.
        y.view(-1, y.shape[-1]).addmm_(x.reshape(-1, x.shape[-1]) @ update.a_t, update.b_t, alpha=update.scale)
        return y


def read_lora(adapter_dir: Path, like: nn.Module) -> dict[str, LoraUpdate]:
    """The updates of a saved PEFT LoRA adapter, keyed by module name in the base model.

    Tensors are moved to ``like``'s device and dtype. Raises UnsupportedAdapterError for a feature this
    layer does not compute or a file whose keys are not LoRA A/B pairs.
    """
    config: dict[str, Any] = json.loads((adapter_dir / ADAPTER_CONFIG_FILE).read_text())
    used = [field for field, default in _UNSUPPORTED.items() if config.get(field, default) not in (default, None)]
    if config.get("peft_type", "LORA") != "LORA" or used:
        raise UnsupportedAdapterError(f"not plain LoRA: peft_type={config.get('peft_type')!r}, uses {used}")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    parameter = next(like.parameters())
    tensors = load_file(str(adapter_dir / ADAPTER_WEIGHTS_FILE))
    updates = {}
    for key, a in tensors.items():
        if key.endswith(_B_SUFFIX):
            continue
        if not (key.startswith(_PEFT_PREFIX) and key.endswith(_A_SUFFIX)):
            raise UnsupportedAdapterError(f"unexpected tensor {key!r} (only LoRA A/B weights are served)")
        module = key[len(_PEFT_PREFIX) : -len(_A_SUFFIX)]
        b = tensors.get(key[: -len(_A_SUFFIX)] + _B_SUFFIX)
        if b is None:
            raise UnsupportedAdapterError(f"{module} has lora_A but no lora_B")
        updates[module] = LoraUpdate(a.T.to(parameter).contiguous(), b.T.to(parameter).contiguous(), scale)
    return updates


def lora_layer(model: nn.Module, module_name: str, selection: Selection) -> ServingLoraLinear:
    """The serving layer at ``module_name``, wrapping the ``nn.Linear`` there on first use."""
    parent_name, _, child = module_name.rpartition(".")
    parent = model.get_submodule(parent_name)
    module = getattr(parent, child, None)
    if isinstance(module, ServingLoraLinear):
        return module
    if type(module) is not nn.Linear:
        raise UnsupportedAdapterError(f"{module_name} is {type(module).__name__}, not a linear projection")
    layer = ServingLoraLinear(module, selection)
    setattr(parent, child, layer)
    return layer


def check_shapes(layer: ServingLoraLinear, module_name: str, update: LoraUpdate) -> None:
    out_features, in_features = layer.weight.shape
    if update.a_t.shape[0] != in_features or update.b_t.shape[1] != out_features or \
            update.a_t.shape[1] != update.b_t.shape[0]:
        raise UnsupportedAdapterError(f"{module_name}: LoRA shapes {tuple(update.a_t.shape)}, "
                                      f"{tuple(update.b_t.shape)} do not fit ({out_features}, {in_features})")
