"""The quantisation attack: does a quantised copy of the unlearned model remember what it forgot?

Zhang et al. 2025 ("Catastrophic Failure of LLM Unlearning via Quantization", sec. 4): updates small
enough to leave most weights within one quantisation step of the original are rounded away, and the
quantised model recalls the forgotten knowledge again. Serving stacks quantise routinely, so this is a
serving risk, not only a research one. On CPU the copy is int8 dynamic quantisation of every linear layer
(``torch.ao.quantization.quantize_dynamic``); on CUDA with bitsandbytes installed it is 4-bit NF4 (the
setting of the paper), falling back to int8 on a CPU copy otherwise.
"""

from __future__ import annotations

import importlib.util
import tempfile
import warnings
from typing import Literal, cast

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from forgetd.eval.lm import CausalLM, merged_copy

QuantScheme = Literal["int8", "nf4"]


def default_scheme(device: torch.device) -> QuantScheme:
    """4-bit NF4 on CUDA when bitsandbytes is installed, else int8 dynamic (CPU)."""
    if device.type == "cuda" and importlib.util.find_spec("bitsandbytes") is not None:
        return "nf4"
    return "int8"


def quantized_copy(model: CausalLM, scheme: QuantScheme) -> PreTrainedModel:
    """A quantised copy of ``model`` (adapter merged); ``model`` is untouched. int8 copies live on the CPU."""
    if scheme == "int8":
        return _int8_dynamic(model)
    if scheme == "nf4":
        return _nf4(model)
    raise ValueError(f"unknown quantisation scheme {scheme!r}; known: int8, nf4")


def _int8_dynamic(model: CausalLM) -> PreTrainedModel:
    plain = merged_copy(model).cpu().float().eval()  # dynamic quantisation runs on CPU float32 weights
    with warnings.catch_warnings():  # torch deprecates the quantized tensor types this still uses
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(plain, {torch.nn.Linear}, dtype=torch.qint8)
    return cast(PreTrainedModel, quantized)


def _nf4(model: CausalLM) -> PreTrainedModel:
    from transformers import BitsAndBytesConfig

    plain = merged_copy(model)
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                bnb_4bit_compute_dtype=torch.bfloat16)
    with tempfile.TemporaryDirectory(prefix="forgetd-nf4-") as folder:
        plain.save_pretrained(folder)
        del plain
        quantized = AutoModelForCausalLM.from_pretrained(folder, quantization_config=config, device_map="cuda")
    return quantized.eval()
