"""What an unlearning update does: method, LoRA shape, optimisation, stopping, retries and verification.

The objects acting on it are the methods (:mod:`forgetd.unlearning.methods`), the training loop
(:mod:`forgetd.unlearning.trainer`) and :func:`forgetd.unlearning.update.unlearn_batch`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from forgetd.eval.verification import VerificationPolicy
from forgetd.unlearning.inputs import REPLAY_SHARE
from forgetd.unlearning.registry import available_methods

LoraRank = Literal[8, 16, 32, 64, 128, 256]  # the ranks vLLM serves
LlamaProjection = Literal["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ALL_PROJECTIONS: tuple[LlamaProjection, ...] = (
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
)


class UnlearningConfig(BaseModel):
    """Settings of one unlearning update; immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = Field("fit", description="Registered unlearning method (see available_methods()).")
    rank: LoraRank = Field(8, description="LoRA rank of a new adapter; a parent adapter keeps its own.")
    alpha: int = Field(16, ge=1, description="LoRA alpha; the update is scaled by alpha / rank.")
    target_modules: tuple[LlamaProjection, ...] = Field(
        ALL_PROJECTIONS, description="Projections that get LoRA weights (lm_head is tied, so never).")
    learning_rate: float = Field(5e-4, gt=0, le=1, description="AdamW learning rate of the first attempt.")
    max_steps: int = Field(100, ge=1, le=100_000, description="Optimiser steps per attempt at most.")
    batch_size: int = Field(32, ge=1, description="Forget and retain sequences per step (each).")
    max_seq_len: int = Field(256, ge=8, description="Texts and probes are truncated to this many tokens.")
    retain_weight: float = Field(1.0, ge=0, description="Weight of the retain NLL term.")
    kl_weight: float = Field(1.0, ge=0, description="Weight of the KL to the reference model on retain inputs.")
    npo_beta: float = Field(0.1, gt=0, description="Inverse temperature beta of the NPO and SimNPO losses.")
    simnpo_delta: float = Field(0.0, ge=0, description="SimNPO's reward margin delta (gamma in the paper).")
    rmu_layer: int | None = Field(None, ge=0, description="RMU's steered layer; None: the middle layer.")
    rmu_steering: float = Field(4.0, gt=0, description="RMU's steering coefficient, as a multiple of the "
                                "reference activations' mean norm (the paper's c is absolute for a 7B model).")
    gs_lasso_weight: float = Field(1e-3, ge=0, description="GS-LoRA's group-lasso weight (one group per block).")
    ssd_alpha: float = Field(10.0, gt=0, description="SSD's selection threshold: a weight is dampened when its "
                             "forget importance exceeds alpha times its retain importance.")
    ssd_lambda: float = Field(1.0, gt=0, description="SSD's dampening constant.")
    fit_layer_share: float = Field(0.5, gt=0, le=1, description="fit: share of the layers (by forget-versus-"
                                   "retain Fisher importance) whose LoRA weights train.")
    fit_top_k: int = Field(32, ge=2, description="fit: the reference distribution kept at each forget position "
                           "(top-k tokens and the rest of its mass as one bucket; bounds the memory of the "
                           "targets for long texts).")
    fit_known_subjects: int = Field(64, ge=0, description="fit: subjects the base model names in each forget "
                                    "question's subject slot (its likeliest), whose answers to the same questions "
                                    "the update must keep; 0: only the retain probes' subjects.")
    fit_transplant_rows: int = Field(128, ge=1, description="fit: questions about the known subjects held per "
                                     "step (of several hundred): with one forget minibatch's worth (32), the people "
                                     "not yet requested kept 0.85-0.88 of their facts over a stream of 50 in batches "
                                     "of 8; with 128, 0.93-0.95.")
    fit_gap_weight: float = Field(3.0, ge=0, description="fit: weight of the smooth-L1 pull of each forgotten label's "
                                  "log-likelihood to its counterfactual value (what membership inference reads; the "
                                  "cross-entropy alone barely moves a token whose target probability is tiny).")
    fit_answer_discount: float = Field(1.0, ge=0, description="fit: nats taken off each forgotten answer "
                                       "token's logit in the stranger's reading: the stranger guesses from a prior "
                                       "its reference learned from the forgotten people too, so it favours their "
                                       "answers more than a model that never saw them.")
    fit_tolerance: float = Field(0.5, gt=0, description="fit: training stops once the forgotten labels' "
                                 "log-likelihood is within this many nats (mean) of its counterfactual value.")
    fit_checked_replays: int = Field(96, ge=1, description="fit: replayed rows the stop criterion reads at most "
                                     "(a fixed sample per update): the check then costs the same however many "
                                     "earlier probes an update holds.")
    replay: int = Field(300, ge=0, description="Earlier requests (still inside their verification window) "
                        "looked at, and their probes and neighbours replayed, per update at most: enough to hold "
                        "every earlier probe of a stream of 50 (with 48, forgotten answers came back between "
                        "replays at batch size 1; docs/benchmark.md, seventeenth round).")
    replay_share: float = Field(REPLAY_SHARE, ge=0, le=1, description="Share of each step's forget minibatch "
                                "that replayed rows take (more when the update's own rows are fewer).")
    memorisation_filter: bool = Field(True, description="Drop requests the model does not reproduce before "
                                      "training (they end not_memorized; see forgetd.filters.memorisation).")
    strength: float = Field(1.0, gt=0, description="How hard this attempt pushes (set by with_strength); methods "
                            "without a learning rate (ssd) read it directly.")
    check_every: int = Field(2, ge=1, description="Steps between checks whether the forget probes are "
                             "forgotten; training stops at the first check that says so.")
    seed: int = Field(0, ge=0, description="Seed of LoRA initialisation and minibatch sampling.")
    max_attempts: int = Field(3, ge=1, le=10, description="Training attempts before the update is given up.")
    retry_strength_factor: float = Field(
        2.0, gt=1, description="A retry multiplies the strength by this when forgetting fell short, and "
        "divides it by this when the retain probes dropped too far (see with_strength).")
    verification: VerificationPolicy = Field(default_factory=VerificationPolicy,
                                              description="What a candidate must meet to pass.")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        known = available_methods()
        if value not in known:
            raise ValueError(f"unknown method {value!r}; known: {known}")
        return value

    @field_validator("target_modules")
    @classmethod
    def _distinct_targets(cls, value: tuple[LlamaProjection, ...]) -> tuple[LlamaProjection, ...]:
        if not value:
            raise ValueError("target_modules must name at least one projection")
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"target_modules repeats {duplicates}")
        return value

    def with_strength(self, strength: float) -> UnlearningConfig:
        """This config pushed ``strength`` times harder: learning rate times ``strength``, retain and KL
        weights divided by it (a retry's adjustment; on a pretrained model the retain weight matters
        more than the learning rate for keeping neighbouring facts)."""
        return self.model_copy(update={"learning_rate": min(1.0, self.learning_rate * strength),
                                       "retain_weight": self.retain_weight / strength,
                                       "kl_weight": self.kl_weight / strength,
                                       "strength": self.strength * strength})

    @classmethod
    def for_model(cls, model_spec: str, **overrides: Any) -> UnlearningConfig:
        """The defaults measured for the method (``METHOD_PROFILES``), then for a known base model
        (``MODEL_PROFILES``), then ``overrides``."""
        method = overrides.get("method", cls.model_fields["method"].default)
        return cls(**{**METHOD_PROFILES.get(method, {}), **MODEL_PROFILES.get(model_spec, {}), **overrides})


# fit's loss is bounded below (a cross-entropy to fixed targets), so it takes a learning rate at which the
# ascent objectives diverge: on the tiny bench model a batch of 8 requests reached its targets in about 80
# steps at 2e-3, and its first batch took 120 at 5e-4 with the same dip in retained facts on the way. Its
# keep terms weigh 3: with 1, the first batch of 8 also forgot 13 % of the people still to come (the bench's
# later requests) and 7 % of the retained facts that no neighbour covered (docs/benchmark.md).
METHOD_PROFILES: dict[str, dict[str, Any]] = {
    "fit": {"learning_rate": 2e-3, "kl_weight": 3.0},
}

# Starting points measured on CPU (docs/quickstart.md): the pretrained SmolLM2 loses neighbouring facts
# at the tiny model's learning rate, and keeps them with a gentler rate and a heavier retain term.
MODEL_PROFILES: dict[str, dict[str, Any]] = {
    "smollm2": {"learning_rate": 1e-4, "retain_weight": 5.0},
}
