"""A tiny random Llama (byte-level tokenizer), LoRA adapters for it, a store and an engine over them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from serving_helpers import LINEAGE, Publish
from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

from adapters_store import AdapterStore, Manifest
from forgetd.models import load_model
from forgetd.serving.engine import EmbeddedEngine


@pytest.fixture(scope="session")
def random_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = ByT5Tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def adapter_dir(random_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """``adapter_dir(seed)``: a saved PEFT LoRA folder whose (non-zero) weights depend on ``seed``."""
    made: dict[int, Path] = {}

    def make(seed: int) -> Path:
        if seed not in made:
            made[seed] = _save_adapter(random_llama_dir, tmp_path_factory.mktemp(f"adapter-{seed}"), seed)
        return made[seed]

    return make


def _save_adapter(base_dir: Path, out: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = get_peft_model(
        LlamaForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"], bias="none"),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 1.0)  # peft starts B at zero (a no-op adapter): make it change outputs
    model.save_pretrained(str(out))
    return out


@pytest.fixture
def store(tmp_path: Path) -> AdapterStore:
    return AdapterStore(tmp_path / "store")


@pytest.fixture
def publish(store: AdapterStore, adapter_dir: Callable[[int], Path], random_llama_dir: Path) -> Publish:
    """``publish(seed, lineage=LINEAGE)``: the adapter made from ``seed`` as the lineage's next version."""

    def run(seed: int, lineage: str = LINEAGE, base_model: str | None = None) -> Manifest:
        return store.publish(
            lineage, adapter_dir(seed), base_model=base_model or random_llama_dir.name, method="graddiff",
            request_ids=[f"req-{seed}"], metrics={},
        )

    return run


@pytest.fixture
def engine(random_llama_dir: Path, store: AdapterStore) -> Iterator[EmbeddedEngine]:
    # A fresh base per test: peft injects LoRA layers into the model it wraps.
    yield EmbeddedEngine(load_model(random_llama_dir, torch.device("cpu")), store)
