"""The vLLM compatibility check on adapters saved by real peft, and on each way they can go wrong."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM
from typer.testing import CliRunner

from adapters_store import check_vllm_compatibility
from forgetd.cli import app

LAYER = "base_model.model.model.layers.0"
BASE = {"architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128}


def _base(config: dict[str, Any]) -> LlamaForCausalLM:
    return LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, max_position_embeddings=64, **{
        k: v for k, v in config.items() if k != "architectures"}))


def _save(out: Path, base: dict[str, Any] = BASE, save_embedding_layers: bool | str = "auto", **lora: Any) -> Path:
    torch.manual_seed(0)
    settings = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], "bias": "none", **lora}
    model = get_peft_model(_base(base), LoraConfig(**settings))
    model.save_pretrained(str(out), save_embedding_layers=save_embedding_layers)
    return out


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(tmp_path_factory.mktemp("good"))


@pytest.fixture
def copy(good: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(good, tmp_path / "adapter"))


def _edit_config(path: Path, **changes: Any) -> None:
    config = json.loads((path / "adapter_config.json").read_text())
    config.update(changes)
    (path / "adapter_config.json").write_text(json.dumps(config))


def _edit_tensors(path: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    tensors = load_file(str(path / "adapter_model.safetensors"))
    edit(tensors)
    save_file(tensors, str(path / "adapter_model.safetensors"))


def test_a_peft_lora_adapter_passes(good: Path) -> None:
    assert check_vllm_compatibility(good) == []
    assert check_vllm_compatibility(good, base_config=BASE) == []


ALL_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens", "lm_head"]


def test_every_llama_module_including_embeddings_passes(tmp_path: Path) -> None:
    path = _save(tmp_path / "all", target_modules=ALL_MODULES, save_embedding_layers=False)

    assert check_vllm_compatibility(path, base_config=BASE) == []


def test_full_embedding_layers_saved_beside_the_lora_weights_are_refused(tmp_path: Path) -> None:
    # peft's default when embeddings are targeted: it also saves the whole embedding matrices.
    path = _save(tmp_path / "all", target_modules=ALL_MODULES)

    problems = check_vllm_compatibility(path, base_config=BASE)

    assert "unexpected tensor 'base_model.model.lm_head.base_layer.weight' (vLLM loads only lora_A/lora_B " \
           "weights)" in problems


@pytest.mark.parametrize(("changes", "expected"), [
    ({"r": 12}, "rank r=12 is not one of vLLM's LoRA ranks"),
    ({"r": 512}, "rank r=512 is above the server's max LoRA rank 256"),
    ({"bias": "all"}, "bias is 'all'; vLLM needs 'none'"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save ['lm_head'] is set"),
    ({"use_dora": True}, "use_dora is set; vLLM does not serve DoRA"),
    ({"peft_type": "IA3"}, "peft_type is 'IA3', vLLM serves only 'LORA'"),
    ({"target_modules": ["q_proj", "v_proj", "rotary_proj"]}, "target modules ['rotary_proj'] are not LoRA modules"),
    ({"target_modules": ["q_proj"]}, "'model.layers.0.self_attn.v_proj', which target_modules does not name"),
    ({"target_modules": ["q_proj", "v_proj", "o_proj"]}, "target modules ['o_proj'] have no tensors"),
])
def test_each_config_problem_is_named(copy: Path, changes: dict[str, Any], expected: str) -> None:
    _edit_config(copy, **changes)

    problems = check_vllm_compatibility(copy)

    assert any(expected in problem for problem in problems), problems


def test_tensors_of_another_rank_than_the_config(copy: Path) -> None:
    _edit_config(copy, r=16)

    problems = check_vllm_compatibility(copy)

    assert "lora_A of 'model.layers.0.self_attn.q_proj' has rank 8, the config says r=16" in problems


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.update({f"{LAYER}.self_attn.q_proj.lora_B.bias": torch.zeros(32)}),
     f"unexpected tensor '{LAYER}.self_attn.q_proj.lora_B.bias'"),
    (lambda t: t.pop(f"{LAYER}.self_attn.v_proj.lora_B.weight"),
     "module 'model.layers.0.self_attn.v_proj' lacks its lora_B tensor"),
    (lambda t: t.update({f"{LAYER}.self_attn.v_proj.lora_A.weight": torch.zeros(8, 48)}),
     "module 'model.layers.0.self_attn.v_proj' maps 48 -> 16 features"),
    (lambda t: t.update({f"{LAYER}.self_attn.rotary.lora_A.weight": torch.zeros(8, 32),
                         f"{LAYER}.self_attn.rotary.lora_B.weight": torch.zeros(32, 8)}),
     "tensors for module 'model.layers.0.self_attn.rotary', which vLLM does not know"),
])
def test_each_tensor_problem_is_named(copy: Path, edit: Callable[[dict[str, torch.Tensor]], None],
                                      expected: str) -> None:
    _edit_tensors(copy, edit)

    problems = check_vllm_compatibility(copy, base_config=BASE)

    assert any(expected in problem for problem in problems), problems


def test_an_adapter_made_for_another_base_is_refused(good: Path) -> None:
    wider = {**BASE, "hidden_size": 64}

    problems = check_vllm_compatibility(good, base_config=wider)

    assert "module 'model.layers.0.self_attn.q_proj' maps 32 -> 32 features, the base model 64 -> 64" in problems


def test_a_real_dora_adapter_is_refused_for_config_and_tensors(tmp_path: Path) -> None:
    path = _save(tmp_path / "dora", use_dora=True)

    problems = check_vllm_compatibility(path)

    assert "use_dora is set; vLLM does not serve DoRA adapters" in problems
    assert any("lora_magnitude_vector" in problem for problem in problems)


def test_missing_and_unreadable_files(tmp_path: Path, copy: Path) -> None:
    assert check_vllm_compatibility(tmp_path / "nothing") == [
        "no adapter_config.json", "no adapter_model.safetensors (vLLM needs the safetensors file)"]
    (copy / "adapter_model.safetensors").write_bytes(b"\x05")
    assert check_vllm_compatibility(copy) == [
        "adapter_model.safetensors is unreadable: shorter than a safetensors header"]


def test_an_unknown_architecture_is_named(good: Path) -> None:
    problems = check_vllm_compatibility(good, base_config={**BASE, "architectures": ["MambaForCausalLM"]})

    assert problems == ["architecture 'MambaForCausalLM' has no known LoRA modules (['LlamaForCausalLM'])"]


def test_cli_prints_ok_or_every_problem(good: Path, copy: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["adapters", "check", str(good), "--max-rank", "16"])
    assert ok.exit_code == 0 and "OK" in ok.output

    _edit_config(copy, bias="lora_only", use_dora=True)
    bad = runner.invoke(app, ["adapters", "check", str(copy), "--max-rank", "16"])
    assert bad.exit_code == 1
    assert "2 problem(s)" in bad.output
    assert "bias is 'lora_only'" in bad.output and "use_dora is set" in bad.output

    low = runner.invoke(app, ["adapters", "check", str(good), "--max-rank", "1"])
    assert low.exit_code == 1 and "above the server's max LoRA rank 1" in low.output
