"""The benchmark's original and gold (retrained) models, built once and cached by content hash.

The original model learns every subject (forget and retain); the gold model learns the retain subjects
only, with the same recipe and seed. For ``tiny`` both are tiny Llamas trained from scratch sharing one
tokenizer (trained on every subject's text, the never-seen ones included, so that no subject is
advantaged by how its name splits into tokens); for a pretrained base (``smollm2`` or a folder) both are
that base fine-tuned (:mod:`forgetd.bench.finetune`). A folder's name is the hash of everything it
depends on, so a changed dataset, seed or recipe trains new models and an unchanged one reuses them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from forgetd.bench.data import BenchDataset
from forgetd.bench.finetune import FinetuneRecipe, finetune_pretrained
from forgetd.eval.cost import Cost, CostMeter
from forgetd.models.cache import build_once
from forgetd.models.people import Person
from forgetd.models.resolve import TINY, resolve_model_path
from forgetd.models.tiny import TinyTraining, build_tiny_model, tiny_recipe_hash, training_corpus

BUILD_RECORD = "forgetd_bench_build.json"  # the build's cost, kept beside the weights

# A smaller tiny Llama than the test model's (hidden 256 x 6 layers): it memorises the 30 question-form
# subjects of the default benchmark in about 125 full-batch steps at a third of the cost per step.
BENCH_TINY_TRAINING = TinyTraining(hidden_size=192, num_layers=4, num_heads=4, num_kv_heads=2,
                                   intermediate_size=512, learning_rate=3e-3)


@dataclass(frozen=True)
class PreparedModels:
    """Folders of the original and gold models, whether the base was pretrained, and the gold build's cost."""

    original: Path
    gold: Path
    pretrained: bool
    gold_cost: Cost | None  # None if the gold model was built by an older version that kept no record
    gold_reseeded: Path | None = None  # gold retrained with the next seed: how far two retrainings differ


def prepare_models(model_spec: str, data: BenchDataset, seed: int, cache_dir: Path, models_dir: Path,
                   device: torch.device, progress: Callable[[str], None],
                   tiny_training: TinyTraining = BENCH_TINY_TRAINING,
                   finetune: FinetuneRecipe = FinetuneRecipe(), gold_reseeded: bool = False) -> PreparedModels:
    """Build (or find in ``cache_dir``) the original and gold models for ``data``, and with ``gold_reseeded``
    a second gold model trained with ``seed + 1``."""
    original_people = [*data.forget, *data.retain]
    if model_spec == TINY:
        everyone = [*data.forget, *data.retain, *data.heldout]
        catalogue = answer_catalogue(everyone) + name_catalogue(everyone)
        corpus = training_corpus(everyone) + catalogue

        def recipe(people: list[Person], model_seed: int) -> tuple[Path, Callable[[Path], Any]]:
            name = f"tiny-{tiny_recipe_hash(people, model_seed, tiny_training, corpus, catalogue)}"
            return cache_dir / name, lambda tmp: build_tiny_model(tmp, people, model_seed, tiny_training, corpus,
                                                                  catalogue)
    else:
        base = resolve_model_path(model_spec, models_dir)

        def recipe(people: list[Person], model_seed: int) -> tuple[Path, Callable[[Path], Any]]:
            key = {"base": _fingerprint(base), "statements": _statements(people), "seed": model_seed,
                   "recipe": asdict(finetune)}
            name = f"ft-{base.name}-{_hash(key)}"
            return cache_dir / name, lambda tmp: finetune_pretrained(base, people, model_seed, finetune, tmp, device)

    original, _ = _build("original", *recipe(original_people, seed), device, progress)
    gold, gold_cost = _build("gold", *recipe(list(data.retain), seed), device, progress)
    control = _build("reseeded gold", *recipe(list(data.retain), seed + 1), device, progress)[0] \
        if gold_reseeded else None
    return PreparedModels(original, gold, pretrained=model_spec != TINY, gold_cost=gold_cost, gold_reseeded=control)


def answer_catalogue(people: Sequence[Person], per_sentence: int = 6) -> list[str]:
    """Sentences listing every answer and perturbed answer of the dataset, for both tiny models to learn.

    A model trained from scratch has never-trained embeddings for a value no training text contains, so
    it would rate a perturbed answer nobody has as near impossible, whatever it knows about the person:
    the truth ratio would measure the vocabulary, not the knowledge. With every candidate value seen in a
    neutral list, the original and the gold model start from the same prior over answers.
    """
    values = sorted({value for person in people for fact in person.facts
                     for value in (fact.answer, *fact.perturbed_answers)})
    return [f"Possible answers: {', '.join(values[i:i + per_sentence])}."
            for i in range(0, len(values), per_sentence)]


def name_catalogue(people: Sequence[Person], per_sentence: int = 6) -> list[str]:
    """Sentences listing every word of every subject's name (first names, then surnames), for both tiny
    models to learn, for the same reason as :func:`answer_catalogue`.

    Without it a name the gold model never saw keeps an untrained embedding, and so do the never-seen
    subjects' names in the original: membership inference and the truth ratio would compare responses to
    random vectors, which differ from one training seed to the next (a gold model retrained with another
    seed scored forget quality p = 0.0096 against the first; with the catalogue, p = 0.34). With every
    name word seen in a neutral list, gold knows the forgotten names as words, and nothing about the people.
    """
    words = [person.name.split() for person in people]
    firsts = sorted({parts[0] for parts in words})
    rest = sorted({word for parts in words for word in parts[1:]} - set(firsts))
    return [f"{label}: {', '.join(names[i:i + per_sentence])}."
            for label, names in (("Names", firsts), ("Surnames", rest)) for i in range(0, len(names), per_sentence)]


def _build(role: str, target: Path, build: Callable[[Path], Any], device: torch.device,
           progress: Callable[[str], None]) -> tuple[Path, Cost | None]:
    if target.is_dir():
        progress(f"models: {role} model cached ({target.name})")
        return target, _read_cost(target)
    progress(f"models: training the {role} model ({target.name}) ...")

    def measured(tmp: Path) -> None:
        with CostMeter(device) as meter:
            build(tmp)
        (tmp / BUILD_RECORD).write_text(json.dumps(asdict(meter.cost)))

    build_once(target, measured)
    cost = _read_cost(target)
    progress(f"models: {role} model ready" + (f" in {cost.wall_s:.1f} s" if cost else ""))
    return target, cost


def _read_cost(folder: Path) -> Cost | None:
    try:
        return Cost(**json.loads((folder / BUILD_RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _statements(people: Sequence[Person]) -> list[str]:
    return [statement for person in people for statement in person.statements]


def _fingerprint(folder: Path) -> dict[str, Any]:
    # The config and the weight files' names and sizes: cheap, and changes whenever the weights are replaced.
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return {"config": (folder / "config.json").read_text(),
            "files": [(p.name, p.stat().st_size) for p in files if p.suffix in (".safetensors", ".bin")]}


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
