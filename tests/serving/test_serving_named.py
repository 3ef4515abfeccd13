"""Adapters loaded by name (vLLM's runtime LoRA API) on the engine: store paths only, vLLM's answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from serving_helpers import LINEAGE, PROMPT, Publish, tamper

from adapters_store import AdapterStore
from forgetd.serving.domain import AdapterRequestError, GenerationParams, UnknownModelError
from forgetd.serving.engine import EmbeddedEngine

GREEDY = GenerationParams(max_tokens=8)


def _text(engine: EmbeddedEngine, model: str) -> str:
    return engine.complete(model, [PROMPT], GREEDY).completions[0].text


def _refusal(engine: EmbeddedEngine, name: str, path: str) -> AdapterRequestError:
    with pytest.raises(AdapterRequestError) as info:
        engine.load_named_adapter(name, path)
    return info.value


def test_a_store_version_loads_under_its_name_and_unloads(
    engine: EmbeddedEngine, store: AdapterStore, publish: Publish
) -> None:
    publish(1)
    engine.sync_from_store()
    publish(2)
    engine.sync_from_store()  # v1 stays loaded as the previous version
    engine.load_named_adapter("pinned-one", str(store.version_path(LINEAGE, 1)))

    assert _text(engine, "pinned-one") == _text(engine, f"{LINEAGE}-v1")
    cards = {m.id: m for m in engine.models()}
    assert cards["pinned-one"].parent == engine.base_model_id

    publish(3)
    publish(4)
    engine.sync_from_store()  # the alias moves on; a name loaded by hand stays
    assert "pinned-one" in {m.id for m in engine.models()}

    engine.unload_named_adapter("pinned-one")
    with pytest.raises(UnknownModelError):
        engine.complete("pinned-one", [PROMPT], GREEDY)


def test_a_relative_path_is_read_from_the_store_root(engine: EmbeddedEngine, publish: Publish) -> None:
    publish(1)
    engine.load_named_adapter(f"{LINEAGE}-v1", f"{LINEAGE}/versions/000001")
    assert engine.complete(f"{LINEAGE}-v1", [PROMPT], GREEDY).served_name == f"{LINEAGE}-v1"


@pytest.mark.parametrize(
    ("name", "path", "status", "fragment"),
    [
        ("x", "/etc", 400, "outside the adapter store"),
        ("x", "../../../etc", 400, "outside the adapter store"),
        ("x", f"{LINEAGE}/versions/000009", 404, "No adapter found"),
        ("x", f"{LINEAGE}/versions", 400, "not a version directory"),
        ("x", LINEAGE, 400, "not a version directory"),
        ("x", "de\x00fault", 400, "NUL"),
        (f"{LINEAGE}-v7", f"{LINEAGE}/versions/000001", 400, "names another version"),
        ("a/b", f"{LINEAGE}/versions/000001", 400, "invalid lora_name"),
        ("..", f"{LINEAGE}/versions/000001", 400, "invalid lora_name"),
        ("a..b", f"{LINEAGE}/versions/000001", 400, "invalid lora_name"),
        ("a\nb", f"{LINEAGE}/versions/000001", 400, "invalid lora_name"),
        ("a\x00", f"{LINEAGE}/versions/000001", 400, "invalid lora_name"),
    ],
)
def test_refused_loads(
    engine: EmbeddedEngine, publish: Publish, name: str, path: str, status: int, fragment: str
) -> None:
    publish(1)
    error = _refusal(engine, name, path)
    assert (error.status, fragment in str(error)) == (status, True)


def test_a_symlink_out_of_the_store_is_refused(
    engine: EmbeddedEngine, store: AdapterStore, publish: Publish, adapter_dir, tmp_path: Path
) -> None:
    publish(1)
    link = store.root / LINEAGE / "versions" / "000002"
    os.symlink(adapter_dir(5), link)  # a version directory in name, files from elsewhere
    assert _refusal(engine, "x", str(link)).status == 400


def test_a_version_failing_its_hashes_is_refused(
    engine: EmbeddedEngine, store: AdapterStore, publish: Publish
) -> None:
    publish(1)
    tamper(store.version_path(LINEAGE, 1) / "adapter_model.safetensors")
    error = _refusal(engine, "x", f"{LINEAGE}/versions/000001")
    assert (error.status, error.kind) == (400, "BadRequestError")
    assert "x" not in {m.id for m in engine.models()}


def test_a_name_in_use_is_refused_with_vllms_message(engine: EmbeddedEngine, publish: Publish) -> None:
    publish(1)
    engine.sync_from_store()
    for taken in (f"{LINEAGE}-v1", LINEAGE, engine.base_model_id):
        error = _refusal(engine, taken, f"{LINEAGE}/versions/000001")
        assert error.status == 400
        assert str(error).startswith(f"The lora adapter '{taken}' has already been loaded.")


def test_unload_answers_like_vllm(engine: EmbeddedEngine, publish: Publish) -> None:
    publish(1)
    engine.sync_from_store()
    publish(2)
    engine.sync_from_store()
    with pytest.raises(AdapterRequestError) as unknown:
        engine.unload_named_adapter("nope")
    assert (unknown.value.status, str(unknown.value)) == (404, "The lora adapter 'nope' cannot be found.")
    with pytest.raises(AdapterRequestError) as current:
        engine.unload_named_adapter(f"{LINEAGE}-v2")
    assert current.value.status == 409  # the alias serves it: roll back or forward instead
    engine.unload_named_adapter(f"{LINEAGE}-v1")  # the previous version, kept loaded for a quick rollback
    assert f"{LINEAGE}-v1" not in {m.id for m in engine.models()}


def test_rollback_to_an_unloaded_version_loads_it_again(
    engine: EmbeddedEngine, store: AdapterStore, publish: Publish
) -> None:
    for seed in (1, 2, 3):
        publish(seed)
        engine.sync_from_store()
    assert f"{LINEAGE}-v1" not in {m.id for m in engine.models()}  # neither current nor previous: unloaded

    store.set_current(LINEAGE, 1, reason="test rollback")
    engine.sync_lineage(LINEAGE)

    assert engine.served_version(LINEAGE) == 1
    result = engine.complete(LINEAGE, [PROMPT], GREEDY)
    assert result.served_name == f"{LINEAGE}-v1"
    assert result.completions[0].text != _text(engine, f"{LINEAGE}-v3")
