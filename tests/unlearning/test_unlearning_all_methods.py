"""Every registered method on the tiny model: it is registered, one step (or, for ssd, its retrain-free
update) moves the forget data the right way, and the adapter it leaves is one vLLM would serve."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from forgetd.eval.likelihood import forward_logits, sequence_nll
from forgetd.models import load_model
from forgetd.models.tiny import default_tiny_people, fact_probes
from forgetd.unlearning import UnlearningConfig, available_methods, get_method
from forgetd.unlearning.adapters import attach_adapter, save_adapter
from forgetd.unlearning.inputs import UnlearningData, prepare_data

pytestmark = pytest.mark.slow
METHODS = ("ga", "graddiff", "npo", "simnpo", "rmu", "gs_lora", "fit", "ssd")
VLLM_RANKS = {1, 8, 16, 32, 64, 128, 256, 320, 512}
PEOPLE = default_tiny_people()


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return tiny_model_dir


def setup(tiny_model_dir, config: UnlearningConfig):
    # Small on purpose (one chunk per pass): these tests check directions and formats, not quality.
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    model = attach_adapter(loaded.model, None, config)
    data = prepare_data(model, loaded.tokenizer, PEOPLE[0].statements, fact_probes(PEOPLE[:1]),
                        fact_probes(PEOPLE[1:3]), max_seq_len=64)
    return model, data


def probe_nll(model, data: UnlearningData) -> float:
    probes = data.forget.select(torch.nonzero(data.forget_is_probe).flatten())
    with torch.no_grad():
        nll, count = sequence_nll(forward_logits(model, probes), probes.labels)
    return float((nll / count).mean())


def step(method, model, data: UnlearningData, optimizer: torch.optim.Optimizer, seed: int = 0):
    """One optimiser step on the whole (small) data; returns the loss terms before the step."""
    model.train()
    terms = method.loss(model, data.sample(1000, torch.Generator().manual_seed(seed)))
    optimizer.zero_grad()
    terms.total.backward()
    optimizer.step()
    model.eval()
    return terms


def assert_servable(model, out_dir) -> None:
    out = save_adapter(model, out_dir)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA"
    assert adapter["r"] in VLLM_RANKS
    assert adapter["bias"] == "none"
    assert not adapter.get("modules_to_save")
    assert not adapter.get("use_dora")
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys)
    assert {k.split(".")[-3] for k in keys} <= set(adapter["target_modules"])


def test_every_method_is_registered():
    assert set(METHODS) <= set(available_methods())
    assert all(get_method(name).name == name for name in METHODS)


def test_fit_is_the_default():
    assert UnlearningConfig().method == "fit"


@pytest.mark.parametrize("name", [m for m in METHODS if m != "ssd"])
def test_a_step_lowers_the_forget_term_and_leaves_a_servable_adapter(tiny, tmp_path, name):
    config = UnlearningConfig(method=name, learning_rate=1e-2, seed=1)
    model, data = setup(tiny, config)
    method = get_method(name)(config)
    method.prepare(model, data)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    before = step(method, model, data, optimizer)
    model.train()
    after = method.loss(model, data.sample(1000, torch.Generator().manual_seed(0)))
    assert after.forget.item() < before.forget.item()
    assert_servable(model, tmp_path / "adapter")


def test_fit_raises_the_forget_nll_in_a_few_steps(tiny):
    config = UnlearningConfig(method="fit", learning_rate=1e-2, seed=1)
    model, data = setup(tiny, config)
    method = get_method("fit")(config)
    method.prepare(model, data)
    start = probe_nll(model, data)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    for seed in range(4):
        step(method, model, data, optimizer, seed)
    assert probe_nll(model, data) > start + 0.1


def test_ssd_dampens_without_training_and_records_the_consolidation(tiny, tmp_path):
    config = UnlearningConfig(method="ssd", ssd_alpha=2.0)
    model, data = setup(tiny, config)
    start = probe_nll(model, data)
    method = get_method("ssd")(config)
    method.prepare(model, data)
    assert not method.trains
    assert probe_nll(model, data) > start
    assert method.consolidation is not None
    fields = method.consolidation.manifest_fields()
    assert fields["forgetd_consolidated_rank"] == config.rank
    assert 0 < fields["forgetd_consolidation_min_energy"] <= fields["forgetd_consolidation_energy"] <= 1
    assert_servable(model, tmp_path / "adapter")


def test_fit_trains_only_the_layers_fisher_selects(tiny):
    config = UnlearningConfig(method="fit", fit_layer_share=0.5)
    model, data = setup(tiny, config)
    method = get_method("fit")(config)
    method.prepare(model, data)
    layers = model.get_base_model().config.num_hidden_layers
    assert len(method.layers) == layers // 2
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(any(f".layers.{i}." in name for i in method.layers) for name in trainable)
