"""UnlearningConfig validation: every bad value is named in the error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from forgetd.unlearning import ALL_PROJECTIONS, UnlearningConfig


def test_defaults():
    config = UnlearningConfig()
    assert config.method == "fit"
    assert config.rank == 8
    assert config.target_modules == ALL_PROJECTIONS
    assert len(ALL_PROJECTIONS) == 7


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("method", "ascent", "'ascent'"),
        ("rank", 12, "12"),
        ("target_modules", ("q_proj", "lm_head"), "lm_head"),
        ("target_modules", (), "at least one"),
        ("target_modules", ("q_proj", "v_proj", "q_proj"), "['q_proj']"),
        ("learning_rate", 0.0, "0.0"),
        ("max_steps", 0, "0"),
        ("retain_weight", -1.0, "-1.0"),
        ("npo_beta", 0, "0"),
        ("max_attempts", 0, "0"),
        ("retry_strength_factor", 1.0, "1.0"),
        ("verification", {"max_retain_drop": 2.0}, "2.0"),
        ("rnak", 8, "rnak"),  # a typo is an error, not a silently ignored field
    ],
)
def test_bad_values_are_named(field, value, shown):
    with pytest.raises(ValidationError) as info:
        UnlearningConfig(**{field: value})
    assert shown in str(info.value)
    assert field.split(".")[0] in str(info.value)


def test_frozen():
    with pytest.raises(ValidationError):
        UnlearningConfig().rank = 16  # type: ignore[misc]


def test_with_strength_scales_learning_rate_up_and_regularisers_down():
    config = UnlearningConfig(learning_rate=1e-3, retain_weight=1.0, kl_weight=0.5)
    stronger = config.with_strength(2.0)
    assert stronger.learning_rate == pytest.approx(2e-3)
    assert (stronger.retain_weight, stronger.kl_weight) == (0.5, 0.25)
    assert stronger.strength == 2.0 and stronger.with_strength(0.5).strength == 1.0  # for methods without a rate
    scaled = {"learning_rate", "retain_weight", "kl_weight", "strength"}
    assert stronger.model_dump(exclude=scaled) == config.model_dump(exclude=scaled)
    assert config.with_strength(1e6).learning_rate == 1.0  # capped at the field's maximum


def test_known_models_start_from_their_measured_profile_and_overrides_win() -> None:
    from forgetd.unlearning.config import METHOD_PROFILES, MODEL_PROFILES

    smollm2 = UnlearningConfig.for_model("smollm2")
    assert smollm2.learning_rate == MODEL_PROFILES["smollm2"]["learning_rate"]
    assert UnlearningConfig.for_model("smollm2", learning_rate=3e-4).learning_rate == 3e-4
    assert UnlearningConfig.for_model("/some/local/folder") == UnlearningConfig(**METHOD_PROFILES["fit"])
    assert UnlearningConfig.for_model("/some/local/folder", method="npo") == UnlearningConfig(method="npo")
