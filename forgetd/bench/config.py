"""What one benchmark run does: model, data, stream, methods, seed, output; and the per-base profiles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from forgetd.bench.baselines import FULL_BASELINES, FullRecipe
from forgetd.eval.relearn import RelearnAttack
from forgetd.models.device import DeviceChoice
from forgetd.unlearning.registry import available_methods

DEFAULT_BASELINES = tuple(FULL_BASELINES)


class BenchConfig(BaseModel):
    """One ``forgetd bench`` run; immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field("tiny", description="'tiny' (trained from scratch), 'smollm2', or a local HF folder.")
    dataset: str = Field("builtin", description="'builtin' or a JSON Lines file (docs/benchmark.md).")
    requests: int = Field(20, ge=1, description="Forget subjects, one deletion request each, in order.")
    batch_size: int = Field(4, ge=1, description="Requests per unlearning batch.")
    method: str = Field("fit", description="forgetd method under test (a registered name).")
    baselines: tuple[str, ...] = Field(DEFAULT_BASELINES, description="Other methods on the same stream: "
                                       "full-parameter baselines (full_ga, full_graddiff, full_npo) or "
                                       "registered forgetd methods.")
    seed: int = Field(0, ge=0, description="Seed of the data, the models, the unlearning and the attacks.")
    method_seed: int | None = Field(None, ge=0, description="Seed of the forgetd methods' own randomness (LoRA "
                                    "initialisation, minibatches) when it should differ from seed: the same data, "
                                    "models and stream, another run of the method (how far chance alone moves it).")
    out: Path = Field(Path("bench-out"), description="Folder for report.json, report.md and curves.png.")
    cache: Path | None = Field(None, description="Where original and gold models are cached; default "
                               "<models dir>/bench.")
    retain: int | None = Field(None, ge=1, description="Retain subjects; default 10 (built-in) or every "
                               "subject left (file).")
    heldout: int = Field(10, ge=1, description="Never-seen subjects (membership inference, perplexity).")
    neighbours: int = Field(8, ge=0, le=32, description="Retain facts each request carries as neighbours.")
    replay: int = Field(300, ge=0, description="Earlier requests' probes each forgetd batch replays and "
                        "re-verifies, and earlier neighbours it keeps, at most (a cap: the cost per request "
                        "stops growing once the stream's earlier probes reach it).")
    device: DeviceChoice = Field("auto", description="auto picks cuda when available.")
    gold_reseeded: bool = Field(True, description="Also retrain gold with the next seed and score it against gold: "
                                "how far two retrainings differ, the floor under every comparison with gold.")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in available_methods():
            raise ValueError(f"unknown method {value!r}; forgetd methods: {available_methods()}")
        return value

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = [*FULL_BASELINES, *available_methods()]
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; known: {known}")
        return tuple(dict.fromkeys(value))  # duplicates dropped, order kept


@dataclass(frozen=True)
class BaseProfile:
    """Attack and baseline settings scaled to the base model."""

    full_recipe: FullRecipe
    relearn: RelearnAttack


def base_profile(pretrained: bool, seed: int) -> BaseProfile:
    """open-unlearning's learning rate (1e-5) for a pretrained base; for the tiny model, trained from
    scratch at 3e-3, rates scaled so that ten epochs of gradient ascent do forget a batch."""
    if pretrained:
        return BaseProfile(FullRecipe(learning_rate=1e-5), RelearnAttack(steps=10, learning_rate=3e-5, seed=seed))
    return BaseProfile(FullRecipe(learning_rate=1e-4), RelearnAttack(steps=10, learning_rate=1e-3, seed=seed))
