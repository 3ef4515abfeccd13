"""Loading a resolved model folder onto a device."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from forgetd.models.errors import ModelNotFoundError

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A base model ready for inference, its tokenizer, where it came from and a stable id of it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    path: Path
    name: str


def default_dtype(device: torch.device) -> torch.dtype:
    """float32 on CPU (bf16 matmuls are slow there), bfloat16 on CUDA."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_model(path: Path, device: torch.device, dtype: torch.dtype | None = None) -> LoadedModel:
    """Load the folder's causal LM (in eval mode) and tokenizer; the tokenizer gets a pad token if it has none.

    ``name`` is the folder's name: ``smollm2-135m-instruct`` or ``tiny-<recipe hash>`` for the built-in
    models, which is stable across machines for the same weights.
    """
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"model folder {str(path)!r} has no config.json")
    dtype = dtype or default_dtype(device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is always masked out, any token will do
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device)
    model.eval()
    logger.info("loaded model %s on %s as %s", path.name, device, dtype)
    return LoadedModel(model=model, tokenizer=tokenizer, path=path, name=path.name)
