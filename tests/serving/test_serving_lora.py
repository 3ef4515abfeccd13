"""The serving LoRA layer: the same numbers as peft, and a refusal of what it does not compute."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from forgetd.models import load_model
from forgetd.serving.backends import AdapterBackend
from forgetd.serving.lora import UnsupportedAdapterError, read_lora

CPU = torch.device("cpu")


def test_logits_match_peft(random_llama_dir: Path, adapter_dir: Callable[[int], Path]) -> None:
    ids = torch.tensor([[5, 9, 33, 41, 7]])
    reference = PeftModel.from_pretrained(load_model(random_llama_dir, CPU).model, adapter_dir(1))
    backend = AdapterBackend(load_model(random_llama_dir, CPU).model)
    backend.add("v1", adapter_dir(1))
    backend.add("v2", adapter_dir(2))

    with torch.inference_mode():
        expected = reference(input_ids=ids).logits
        with backend.generating("v1") as model:
            served = model(input_ids=ids).logits
        with backend.generating(None) as model:
            base = model(input_ids=ids).logits
        with reference.disable_adapter():
            reference_base = reference(input_ids=ids).logits

    torch.testing.assert_close(served, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(base, reference_base, rtol=0, atol=0)
    backend.remove("v1")
    with pytest.raises(KeyError), backend.generating("v1"):
        pass  # a removed version is refused, never answered as the base


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"use_dora": True}, "use_dora"),
        ({"rank_pattern": {"q_proj": 4}}, "rank_pattern"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"peft_type": "IA3"}, "IA3"),
    ],
)
def test_features_it_does_not_compute_are_refused(
    adapter_dir: Callable[[int], Path], tmp_path: Path, change: dict[str, object], fragment: str
) -> None:
    folder = tmp_path / "adapter"
    folder.mkdir()
    for file in adapter_dir(1).iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps(config | change))
    with pytest.raises(UnsupportedAdapterError, match=fragment):
        read_lora(folder, torch.nn.Linear(1, 1))


def test_a_target_that_is_not_a_linear_projection_is_refused(random_llama_dir: Path, tmp_path: Path) -> None:
    model = get_peft_model(load_model(random_llama_dir, CPU).model, LoraConfig(r=8, target_modules=["embed_tokens"]))
    model.save_pretrained(str(tmp_path))
    with pytest.raises(UnsupportedAdapterError):
        AdapterBackend(load_model(random_llama_dir, CPU).model).add("v1", tmp_path)
