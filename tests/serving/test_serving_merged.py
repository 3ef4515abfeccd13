"""Merged mode: each version's LoRA update merged into its own copy of the targeted weights only."""

from __future__ import annotations

from pathlib import Path

import torch
from serving_helpers import LINEAGE, PROMPT, Publish

from adapters_store import AdapterStore
from forgetd.models import load_model
from forgetd.serving.backends import AdapterBackend, MergedBackend, merged_copy
from forgetd.serving.domain import GenerationParams
from forgetd.serving.engine import EmbeddedEngine

GREEDY = GenerationParams(max_tokens=8)


def _text(engine: EmbeddedEngine, model: str) -> str:
    return engine.complete(model, [PROMPT], GREEDY).completions[0].text


def test_merged_weights_answer_as_the_adapter_does(random_llama_dir: Path, adapter_dir) -> None:
    ids = torch.tensor([[5, 9, 33, 41, 7]])
    adapter = AdapterBackend(load_model(random_llama_dir, torch.device("cpu")).model)
    merged = MergedBackend(load_model(random_llama_dir, torch.device("cpu")).model)
    for backend in (adapter, merged):
        backend.add("v1", adapter_dir(1))
    with torch.inference_mode(), adapter.generating("v1") as a, merged.generating("v1") as m:
        torch.testing.assert_close(m(input_ids=ids).logits, a(input_ids=ids).logits, rtol=1e-4, atol=1e-5)


def test_merged_engine_swaps_and_keeps_its_base(random_llama_dir: Path, store: AdapterStore, publish: Publish) -> None:
    merged = EmbeddedEngine(load_model(random_llama_dir, torch.device("cpu")), store, mode="merged")
    base = _text(merged, merged.base_model_id)
    answers = set()
    for seed in (1, 2):
        publish(seed)
        merged.sync_from_store()
        result = merged.complete(LINEAGE, [PROMPT], GREEDY)
        assert result.served_name == f"{LINEAGE}-v{seed}"
        answers.add(result.completions[0].text)
    assert base not in answers and len(answers) == 2
    assert _text(merged, merged.base_model_id) == base  # merging never wrote into the base


def test_a_merged_copy_shares_every_untargeted_tensor(random_llama_dir: Path, adapter_dir) -> None:
    base = load_model(random_llama_dir, torch.device("cpu")).model
    before = {name: p.detach().clone() for name, p in base.named_parameters()}

    merged = merged_copy(base, adapter_dir(1))

    base_params = dict(base.named_parameters())
    for name, param in merged.named_parameters():
        targeted = name.endswith(("q_proj.weight", "v_proj.weight"))  # the fixture's target modules
        assert (param.data_ptr() == base_params[name].data_ptr()) is not targeted, name
        if targeted:
            assert not torch.equal(param, before[name]), f"{name} was not merged"
    for name, param in base.named_parameters():
        assert torch.equal(param, before[name]), f"the base's {name} changed"
    assert not any("lora" in name for name, _ in merged.named_modules())
