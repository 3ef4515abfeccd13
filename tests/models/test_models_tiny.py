"""The tiny test model: deterministic, self-contained, and it has really learned its facts."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from forgetd.eval import greedy_completion, probe_recall
from forgetd.models import fictitious_people, load_model
from forgetd.models.tiny import (
    FILLER,
    TinyTraining,
    build_tiny_model,
    default_tiny_people,
    fact_probes,
    tiny_recipe_hash,
)

SHORT = TinyTraining(max_steps=3, check_every=1000)  # a few steps: enough to compare two builds


def test_recipe_hash_tracks_people_seed_and_training():
    people = fictitious_people(4, seed=0)
    assert tiny_recipe_hash(people, 0) == tiny_recipe_hash(fictitious_people(4, seed=0), 0)
    assert tiny_recipe_hash(people, 0) != tiny_recipe_hash(people, 1)
    assert tiny_recipe_hash(people, 0) != tiny_recipe_hash(fictitious_people(5, seed=0), 0)
    assert tiny_recipe_hash(people, 0) != tiny_recipe_hash(people, 0, SHORT)


def test_build_is_deterministic(tmp_path):
    people = fictitious_people(2, seed=0)
    first = build_tiny_model(tmp_path / "a", people, seed=0, training=SHORT)
    second = build_tiny_model(tmp_path / "b", people, seed=0, training=SHORT)
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert (first / "tokenizer.json").read_text() == (second / "tokenizer.json").read_text()


def test_tokenizer_loads_from_the_folder_and_encodes_any_text(tmp_path):
    folder = build_tiny_model(tmp_path, fictitious_people(1, seed=0), training=SHORT)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = "Zoë's café costs 12 € — ok?"  # characters the corpus never had: bytes still encode them
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


@pytest.mark.slow
def test_default_tiny_model_recalls_every_fact(tiny_model_dir):
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    assert probe_recall(loaded.model, loaded.tokenizer, fact_probes(default_tiny_people())) == 1.0


@pytest.mark.slow
def test_default_tiny_model_knows_its_filler(tiny_model_dir):
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    prompts = [" ".join(sentence.split()[:3]) for sentence in FILLER]
    completions = greedy_completion(loaded.model, loaded.tokenizer, prompts, max_new_tokens=16)
    recalled = [f"{p}{c}" == s for p, c, s in zip(prompts, completions, FILLER, strict=True)]
    assert sum(recalled) >= len(FILLER) - 2


@pytest.mark.slow
def test_batched_greedy_equals_one_prompt_at_a_time(tiny_model_dir):
    # Left padding must not change what a prompt continues into.
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    prompts = [probe.prompt for probe in fact_probes(default_tiny_people()[:3])] + ["Once upon a time"]
    batched = greedy_completion(loaded.model, loaded.tokenizer, prompts, max_new_tokens=6)
    single = [greedy_completion(loaded.model, loaded.tokenizer, [p], max_new_tokens=6)[0] for p in prompts]
    assert batched == single
