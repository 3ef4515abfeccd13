"""The pass/fail decision: a table of score pairs against policies."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from forgetd.eval import ProbeScores, VerificationPolicy, verify_update

BEFORE = ProbeScores(forget_recall=1.0, forget_nll=0.1, retain_recall=1.0, retain_nll=0.1)


def after(forget_recall: float = 0.0, forget_nll: float = 5.0, retain_recall: float = 1.0) -> ProbeScores:
    return ProbeScores(forget_recall=forget_recall, forget_nll=forget_nll, retain_recall=retain_recall,
                       retain_nll=0.2)


@pytest.mark.parametrize(
    ("before", "after_scores", "policy", "forget_ok", "retain_ok"),
    [
        (BEFORE, after(), VerificationPolicy(), True, True),
        (BEFORE, after(forget_recall=0.25), VerificationPolicy(), False, True),
        (BEFORE, after(forget_recall=0.25), VerificationPolicy(max_forget_recall=0.25), True, True),
        (BEFORE, after(forget_nll=0.05), VerificationPolicy(), False, True),  # NLL fell: not forgotten
        (BEFORE, after(forget_nll=0.5), VerificationPolicy(min_forget_nll_gain=1.0), False, True),
        (BEFORE, after(retain_recall=0.9), VerificationPolicy(), True, True),  # exactly the allowed drop
        (BEFORE, after(retain_recall=0.85), VerificationPolicy(), True, False),
        # 0.4 - 0.3 is 0.10000000000000003 in floats: still within a 0.1 allowance
        (ProbeScores(1.0, 0.1, 0.4, 0.1), after(retain_recall=0.3), VerificationPolicy(), True, True),
        # relative: at most half of the recall before (0.5 of 0.8 = 0.4)
        (ProbeScores(0.8, 0.1, 1.0, 0.1), after(forget_recall=0.4),
         VerificationPolicy(max_forget_recall=0.5, relative_forget_recall=True), True, True),
        (ProbeScores(0.8, 0.1, 1.0, 0.1), after(forget_recall=0.5),
         VerificationPolicy(max_forget_recall=0.5, relative_forget_recall=True), False, True),
        (BEFORE, after(forget_recall=1.0, forget_nll=0.1, retain_recall=0.0), VerificationPolicy(), False, False),
    ],
)
def test_verify_update(before, after_scores, policy, forget_ok, retain_ok):
    report = verify_update(before, after_scores, policy)
    assert (report.forget_passed, report.retain_passed) == (forget_ok, retain_ok)
    assert report.passed == (forget_ok and retain_ok)
    assert bool(report.reasons) != report.passed


def test_reasons_are_numbers_only():
    report = verify_update(BEFORE, after(forget_recall=1.0, forget_nll=0.0, retain_recall=0.5),
                           VerificationPolicy())
    assert len(report.reasons) == 3
    for reason in report.reasons:
        words = set(re.sub(r"-?\d+\.\d+", "", reason).replace("(", " ").replace(")", " ").replace(",", " ").split())
        assert words <= {"forget", "retain", "recall", "NLL", "is", "above", "the", "allowed", "before:", "rose",
                         "by", "nats", "->", "needs", "more", "than", "fell"}, reason


def test_metrics_are_floats_with_the_pass_flags():
    metrics = verify_update(BEFORE, after(), VerificationPolicy()).metrics()
    assert metrics["forget_recall_before"] == 1.0
    assert metrics["forget_recall_after"] == 0.0
    assert metrics["passed"] == 1.0
    assert "reasons" not in metrics
    assert all(isinstance(value, float) for value in metrics.values())


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_forget_recall", 1.5), ("max_retain_drop", -0.1), ("min_forget_nll_gain", -1.0), ("unknown", 1)],
)
def test_policy_validation_names_the_bad_value(field, value):
    with pytest.raises(ValidationError, match=field):
        VerificationPolicy(**{field: value})


def test_extraction_and_quantisation_scores_reach_the_metrics():
    before = ProbeScores(1.0, 0.1, 1.0, 0.1, forget_extraction=1.0)
    after_scores = ProbeScores(0.0, 5.0, 1.0, 0.2, forget_extraction=0.25)
    report = verify_update(before, after_scores, VerificationPolicy(), quantized_forget_recall=0.5)
    metrics = report.metrics()
    assert metrics["forget_extraction_before"] == 1.0
    assert metrics["forget_extraction_after"] == 0.25
    assert metrics["forget_recall_int8_after"] == 0.5
    assert metrics["quant_recovery"] == 0.5
    assert report.passed  # reported, not gated, by default


def test_unmeasured_scores_are_left_out_of_the_metrics():
    metrics = verify_update(BEFORE, after(), VerificationPolicy()).metrics()
    assert "quant_recovery" not in metrics and "forget_extraction_after" not in metrics
    assert all(isinstance(value, float) for value in metrics.values())


@pytest.mark.parametrize(("quantized", "limit", "forget_ok"), [(0.5, 0.25, False), (0.25, 0.25, True),
                                                               (0.5, None, True)])
def test_quant_recovery_fails_forgetting_only_when_a_limit_is_set(quantized, limit, forget_ok):
    report = verify_update(BEFORE, after(), VerificationPolicy(max_quant_recovery=limit),
                           quantized_forget_recall=quantized)
    assert report.forget_passed == forget_ok
    assert report.retain_passed
    if not forget_ok:
        assert report.reasons == ["forget recall rose by 0.500 on the int8 copy, allowed 0.250"]


@pytest.mark.parametrize(("expected", "after_recall", "passed"), [
    (None, 0.1, False),  # the method does not know what a stranger would guess: the absolute limit holds
    (0.1, 0.1, True),  # as much as a model that never saw the data guesses
    (0.1, 0.15, True),  # within the margin
    (0.1, 0.2, False),
    (0.0, 0.0, True),
])
def test_forget_recall_is_held_to_what_a_model_that_never_saw_the_data_guesses(expected, after_recall, passed):
    report = verify_update(BEFORE, after(forget_recall=after_recall), VerificationPolicy(),
                           expected_forget_recall=expected)
    assert report.forget_passed is passed
    assert report.forget_recall_expected == expected
    assert VerificationPolicy().forget_recall_limit(1.0, expected) == (0.0 if expected is None else expected + 0.05)
