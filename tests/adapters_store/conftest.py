"""Fixtures for the adapter store tests: a store in tmp_path and a factory of tiny PEFT directories."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from adapters_store import AdapterStore, Manifest

MakeAdapter = Callable[..., Path]
PUBLISH_DEFAULTS: dict[str, Any] = {
    "base_model": "tiny-test-model",
    "method": "npo",
    "request_ids": ["req-1"],
    "metrics": {"forget_loss": 2.5, "retain_loss": 0.5},
}


def write_peft_dir(directory: Path, seed: int = 0) -> Path:
    """A minimal PEFT LoRA save directory: config plus a rank-8 A/B pair for one projection."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "bias": "none", "target_modules": ["q_proj"]}
    (directory / "adapter_config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(seed)
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    tensors = {
        f"{prefix}.lora_A.weight": rng.standard_normal((8, 16), dtype=np.float32),
        f"{prefix}.lora_B.weight": rng.standard_normal((16, 8), dtype=np.float32),
    }
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    return directory


@pytest.fixture
def store(tmp_path: Path) -> AdapterStore:
    return AdapterStore(tmp_path / "store")


@pytest.fixture
def make_adapter(tmp_path: Path) -> MakeAdapter:
    """Factory: ``make_adapter(seed)`` writes a distinct PEFT directory per call."""
    counter = iter(range(1_000_000))

    def make(seed: int = 0) -> Path:
        return write_peft_dir(tmp_path / f"adapter-{next(counter)}", seed)

    return make


@pytest.fixture
def publish(store: AdapterStore, make_adapter: MakeAdapter) -> Callable[..., Manifest]:
    """``publish(lineage, source=None, **overrides)`` with valid defaults for every required argument."""

    def _publish(lineage: str = "bot", source: Path | None = None, **overrides: Any) -> Manifest:
        kwargs = PUBLISH_DEFAULTS | overrides
        return store.publish(lineage, source or make_adapter(), **kwargs)

    return _publish
