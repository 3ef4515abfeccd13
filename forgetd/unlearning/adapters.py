"""Putting a LoRA adapter on the base model (new, or the lineage's current one) and saving it servable."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

from forgetd.unlearning.config import UnlearningConfig

logger = logging.getLogger(__name__)


class NonFiniteAdapterError(ValueError):
    """A trained adapter holds NaN or infinite weights and must not be saved."""


def attach_adapter(base: PreTrainedModel, parent: Path | None, config: UnlearningConfig) -> PeftModel:
    """A trainable LoRA adapter on ``base``: the parent's weights when given, else a new one from config.

    The adapter is what vLLM accepts: ``bias="none"``, no ``modules_to_save``, attention and MLP
    projections only. A new adapter's ``lora_B`` is zero, so it starts as the identity.
    """
    if parent is None:
        lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, target_modules=list(config.target_modules),
                          lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
        with torch.random.fork_rng():  # seeded lora_A init (CPU and CUDA), the caller's RNG left alone
            torch.manual_seed(config.seed)
            return get_peft_model(base, lora)
    model = PeftModel.from_pretrained(base, parent, is_trainable=True)
    _log_parent_overrides(model, config)
    return model


def detach_adapter(model: PeftModel) -> PreTrainedModel:
    """The base model with the LoRA layers removed (not merged), ready for a fresh attach."""
    return model.unload()


def save_adapter(model: PeftModel, out_dir: Path) -> Path:
    """Save the adapter (``adapter_config.json`` + ``adapter_model.safetensors``) after a finiteness check."""
    broken = [name for name, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
    if broken:
        raise NonFiniteAdapterError(f"adapter has non-finite weights in {len(broken)} tensors, "
                                    f"first {broken[0]!r}; not saved to {out_dir}")
    model.save_pretrained(str(out_dir))
    return out_dir


def _log_parent_overrides(model: PeftModel, config: UnlearningConfig) -> None:
    # The lineage keeps one bounded rank and one set of targets: a parent's shape wins over the config.
    parent = model.peft_config["default"]
    if not isinstance(parent, LoraConfig):
        raise ValueError(f"the parent adapter is a {type(parent).__name__}, not a LoRA adapter")
    if parent.r != config.rank or set(parent.target_modules or ()) != set(config.target_modules):
        logger.warning("continuing the parent adapter (rank %s, targets %s); config rank %d and targets %s "
                       "apply to new lineages only", parent.r, sorted(parent.target_modules or ()),
                       config.rank, sorted(config.target_modules))
