from __future__ import annotations

from pathlib import Path

import pytest
from serving_helpers import LINEAGE, PROMPT, Publish, tamper

from adapters_store import AdapterStore
from forgetd.metrics import ADAPTER_SWAPS, SERVED_ADAPTER_VERSION
from forgetd.serving.domain import GenerationParams, UnknownModelError
from forgetd.serving.engine import EmbeddedEngine

GREEDY = GenerationParams(max_tokens=8)


def _text(engine: EmbeddedEngine, model: str) -> str:
    return engine.complete(model, [PROMPT], GREEDY).completions[0].text


def _names(engine: EmbeddedEngine) -> set[str]:
    return {m.id for m in engine.models()}


def test_serves_base_before_any_adapter(engine: EmbeddedEngine) -> None:
    engine.sync_from_store()
    result = engine.complete(engine.base_model_id, [PROMPT, "Hello"], GREEDY)
    assert result.served_name == engine.base_model_id
    assert len(result.completions) == 2
    assert all(c.completion_tokens >= 1 and c.prompt_tokens > 0 for c in result.completions)
    assert _names(engine) == {engine.base_model_id}


def test_greedy_is_deterministic(engine: EmbeddedEngine) -> None:
    assert _text(engine, engine.base_model_id) == _text(engine, engine.base_model_id)


def test_sync_moves_alias_to_published_version(engine: EmbeddedEngine, publish: Publish) -> None:
    base = _text(engine, engine.base_model_id)
    publish(1)
    engine.sync_from_store()

    result = engine.complete(LINEAGE, [PROMPT], GREEDY)
    assert result.served_name == f"{LINEAGE}-v1"
    assert result.completions[0].text != base
    assert _text(engine, f"{LINEAGE}-v1") == result.completions[0].text
    assert _text(engine, engine.base_model_id) == base  # the base still answers as the base
    assert engine.served_version(LINEAGE) == 1
    assert SERVED_ADAPTER_VERSION.labels(LINEAGE)._value.get() == 1
    assert _names(engine) == {engine.base_model_id, LINEAGE, f"{LINEAGE}-v1"}


def test_request_resolved_before_swap_finishes_on_its_version(engine: EmbeddedEngine, publish: Publish) -> None:
    publish(1)
    engine.sync_from_store()
    v1 = _text(engine, LINEAGE)

    with engine.acquire(LINEAGE) as lease:
        publish(2)
        engine.sync_from_store()
        publish(3)
        engine.sync_from_store()  # v1 is now neither current nor previous, but this request holds it
        assert lease.served_name == f"{LINEAGE}-v1"
        assert engine.generate(lease, [PROMPT], GREEDY).completions[0].text == v1

    assert engine.complete(LINEAGE, [PROMPT], GREEDY).served_name == f"{LINEAGE}-v3"
    engine.sync_from_store()  # the next sync unloads v1 now that nothing holds it
    assert _names(engine) == {engine.base_model_id, LINEAGE, f"{LINEAGE}-v2", f"{LINEAGE}-v3"}
    with pytest.raises(UnknownModelError):
        engine.complete(f"{LINEAGE}-v1", [PROMPT], GREEDY)


def test_rollback_moves_alias_back(engine: EmbeddedEngine, store: AdapterStore, publish: Publish) -> None:
    publish(1)
    publish(2)
    engine.sync_from_store()
    store.set_current(LINEAGE, 1, reason="test rollback")
    engine.sync_from_store()
    assert engine.served_version(LINEAGE) == 1
    assert _text(engine, LINEAGE) == _text(engine, f"{LINEAGE}-v1")


def test_tampered_version_is_refused_and_previous_keeps_serving(
    engine: EmbeddedEngine, store: AdapterStore, publish: Publish
) -> None:
    publish(1)
    engine.sync_from_store()
    v1 = _text(engine, LINEAGE)
    publish(2)
    tamper(store.version_path(LINEAGE, 2) / "adapter_model.safetensors")
    refused = ADAPTER_SWAPS.labels(LINEAGE, "integrity_error")
    before = refused._value.get()

    engine.sync_from_store()
    engine.sync_from_store()  # a refused version is not retried, nor counted twice

    assert refused._value.get() == before + 1
    assert engine.served_version(LINEAGE) == 1
    assert _text(engine, LINEAGE) == v1
    assert f"{LINEAGE}-v2" not in _names(engine)


def test_two_lineages_are_independent(engine: EmbeddedEngine, publish: Publish) -> None:
    publish(1, "alpha")
    publish(2, "beta")
    engine.sync_from_store()
    assert engine.complete("alpha", [PROMPT], GREEDY).served_name == "alpha-v1"
    assert engine.complete("beta", [PROMPT], GREEDY).served_name == "beta-v1"
    assert _text(engine, "alpha") != _text(engine, "beta")


@pytest.mark.parametrize("model", ["nope", f"{LINEAGE}-v9", ""])
def test_unknown_model(engine: EmbeddedEngine, publish: Publish, model: str) -> None:
    publish(1)
    engine.sync_from_store()
    with pytest.raises(UnknownModelError) as info:
        engine.complete(model, [PROMPT], GREEDY)
    assert info.value.model == model


def test_sync_lineage_ignores_unknown_lineage(engine: EmbeddedEngine) -> None:
    engine.sync_lineage("Not A Lineage!")
    assert engine.served_version("Not A Lineage!") is None


def test_stop_string_cuts_completion(engine: EmbeddedEngine) -> None:
    full = _text(engine, engine.base_model_id)
    assert len(full) >= 3, "the tiny model's greedy text is too short for this test"
    stop = full[1:3]
    completion = engine.complete(engine.base_model_id, [PROMPT], GenerationParams(max_tokens=8, stop=(stop,)))
    assert completion.completions[0].text == full[: full.find(stop)]
    assert completion.completions[0].finish_reason == "stop"


def test_seeded_sampling_repeats(engine: EmbeddedEngine) -> None:
    params = GenerationParams(max_tokens=8, temperature=1.0, seed=7)
    assert _text_with(engine, params) == _text_with(engine, params)


def _text_with(engine: EmbeddedEngine, params: GenerationParams) -> str:
    return engine.complete(engine.base_model_id, [PROMPT], params).completions[0].text


@pytest.mark.parametrize(
    "kwargs",
    [{"max_tokens": 0}, {"temperature": -1.0}, {"top_p": 0.0}, {"stop": ("",)}],
)
def test_generation_params_refuse_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GenerationParams(**kwargs)  # type: ignore[arg-type]


def test_a_declared_lineage_answers_as_the_base_until_its_first_version(
        random_llama_dir: Path, store: AdapterStore, publish: Publish) -> None:
    from forgetd.models import load_model, select_device

    engine = EmbeddedEngine(load_model(random_llama_dir, select_device("cpu")), store, declared_lineages=[LINEAGE])
    engine.sync_from_store()
    base = _text(engine, engine.base_model_id)

    before = engine.complete(LINEAGE, [PROMPT], GREEDY)
    assert before.served_name == engine.base_model_id and before.completions[0].text == base
    assert {m.id: m.root for m in engine.models()}[LINEAGE] == engine.base_model_id

    publish(1)
    engine.sync_from_store()
    assert engine.complete(LINEAGE, [PROMPT], GREEDY).served_name == f"{LINEAGE}-v1"


def test_a_version_trained_for_another_base_is_refused_and_the_old_one_keeps_serving(
        engine: EmbeddedEngine, publish: Publish) -> None:
    publish(1)
    engine.sync_from_store()
    publish(2, base_model="some-other-base")

    engine.sync_from_store()

    assert engine.served_version(LINEAGE) == 1
    assert ADAPTER_SWAPS.labels(LINEAGE, "failed")._value.get() >= 1
