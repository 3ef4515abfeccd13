"""The pass/fail decision on a candidate adapter: forget probes gone, retain probes kept.

Reasons are about numbers only. Probe text is personal data and never appears in a report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from forgetd.eval.probes import ProbeScores

# Recall is a ratio of small counts: 0.4 - 0.3 is 0.10000000000000003 in floats, which must not fail a
# 0.1 threshold.
_TOLERANCE = 1e-9


class VerificationPolicy(BaseModel):
    """Thresholds a candidate adapter must meet to be published."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_forget_recall: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Highest forget-probe recall allowed after the update (absolute share of probes).")
    relative_forget_recall: bool = Field(
        False, description="Read max_forget_recall as a share of the recall before the update instead.")
    max_retain_drop: float = Field(
        0.1, ge=0.0, le=1.0, description="Largest allowed fall in retain-probe recall (absolute).")
    min_forget_nll_gain: float = Field(
        0.0, ge=0.0, description="The forget probes' mean NLL must rise by more than this many nats.")
    quantization_check: bool = Field(
        True, description="Also measure the forget probes' recall on an int8-quantised copy of the updated "
        "model (a quantising server must not bring the text back); reported as quant_recovery.")
    counterfactual_margin: float = Field(
        0.05, ge=0.0, le=1.0, description="For a method that knows the forget recall a model that never saw "
        "the data would still have (it guesses some answers from priors; fit computes it), how far above it "
        "the update may stay. Forgetting those guesses too would be over-forgetting, itself detectable.")
    max_quant_recovery: float | None = Field(
        None, ge=0.0, le=1.0, description="Highest allowed rise of forget recall on the int8 copy over the "
        "update's own recall; None reports it without failing on it.")

    def forget_recall_limit(self, before: float, expected: float | None = None) -> float:
        """The highest forget recall allowed given the recall before the update and, where the method knows
        it, the recall ``expected`` of a model that never saw the data."""
        limit = self.max_forget_recall * before if self.relative_forget_recall else self.max_forget_recall
        return limit if expected is None else max(limit, expected + self.counterfactual_margin)

    def retain_recall_floor(self, before: float) -> float:
        """The lowest retain recall allowed given the recall before the update."""
        return before - self.max_retain_drop - _TOLERANCE


@dataclass(frozen=True)
class VerificationReport:
    """Scores before and after an update, which checks passed, and a plain-number reason per failure."""

    forget_recall_before: float
    forget_recall_after: float
    retain_recall_before: float
    retain_recall_after: float
    forget_nll_before: float
    forget_nll_after: float
    retain_nll_before: float
    retain_nll_after: float
    forget_passed: bool
    retain_passed: bool
    reasons: list[str] = field(default_factory=list)
    # Extraction strength of the forget probes (forgetd.eval.extraction); None when not measured.
    forget_extraction_before: float | None = None
    forget_extraction_after: float | None = None
    # Forget recall of an int8 copy of the updated model, and its rise over the update's own recall.
    forget_recall_int8_after: float | None = None
    quant_recovery: float | None = None
    # The forget recall a model that never saw the data would have, where the method computed it.
    forget_recall_expected: float | None = None
    # The highest forget recall the policy allowed; the serving canary holds the served version to it.
    forget_recall_limit: float | None = None

    @property
    def passed(self) -> bool:
        return self.forget_passed and self.retain_passed

    def metrics(self) -> dict[str, float]:
        """Every measured score (and the pass flags as 0/1) as floats, for manifests, receipts and
        Prometheus; scores that were not measured are left out."""
        values = {name: float(value) for name, value in asdict(self).items()
                  if name != "reasons" and value is not None}
        return {**values, "passed": float(self.passed)}


def verify_update(before: ProbeScores, after: ProbeScores, policy: VerificationPolicy,
                  quantized_forget_recall: float | None = None,
                  expected_forget_recall: float | None = None) -> VerificationReport:
    """Compare the scores before and after an update against ``policy``; every failed check is a reason.

    ``quantized_forget_recall`` is the forget recall of a quantised copy of the updated model, when
    measured (see ``policy.quantization_check``); ``expected_forget_recall`` that of a model that never
    saw the data, when the method knows it (see ``policy.counterfactual_margin``).
    """
    quant_recovery = None if quantized_forget_recall is None else quantized_forget_recall - after.forget_recall
    forget_reasons = (_forget_reasons(before, after, policy, expected_forget_recall)
                      + _quant_reasons(quant_recovery, policy))
    retain_reasons = _retain_reasons(before, after, policy)
    return VerificationReport(
        forget_recall_before=before.forget_recall, forget_recall_after=after.forget_recall,
        retain_recall_before=before.retain_recall, retain_recall_after=after.retain_recall,
        forget_nll_before=before.forget_nll, forget_nll_after=after.forget_nll,
        retain_nll_before=before.retain_nll, retain_nll_after=after.retain_nll,
        forget_passed=not forget_reasons, retain_passed=not retain_reasons,
        reasons=forget_reasons + retain_reasons,
        forget_extraction_before=before.forget_extraction, forget_extraction_after=after.forget_extraction,
        forget_recall_int8_after=quantized_forget_recall, quant_recovery=quant_recovery,
        forget_recall_expected=expected_forget_recall,
        forget_recall_limit=policy.forget_recall_limit(before.forget_recall, expected_forget_recall),
    )


def _forget_reasons(before: ProbeScores, after: ProbeScores, policy: VerificationPolicy,
                    expected: float | None) -> list[str]:
    reasons = []
    limit = policy.forget_recall_limit(before.forget_recall, expected)
    if after.forget_recall > limit + _TOLERANCE:
        reasons.append(f"forget recall {after.forget_recall:.3f} is above the allowed {limit:.3f} "
                       f"(before: {before.forget_recall:.3f})")
    gain = after.forget_nll - before.forget_nll
    if gain <= policy.min_forget_nll_gain:
        reasons.append(f"forget NLL rose by {gain:.3f} nats ({before.forget_nll:.3f} -> "
                       f"{after.forget_nll:.3f}), needs more than {policy.min_forget_nll_gain:.3f}")
    return reasons


def _quant_reasons(quant_recovery: float | None, policy: VerificationPolicy) -> list[str]:
    if quant_recovery is None or policy.max_quant_recovery is None:
        return []
    if quant_recovery <= policy.max_quant_recovery + _TOLERANCE:
        return []
    return [f"forget recall rose by {quant_recovery:.3f} on the int8 copy, allowed {policy.max_quant_recovery:.3f}"]


def _retain_reasons(before: ProbeScores, after: ProbeScores, policy: VerificationPolicy) -> list[str]:
    if after.retain_recall >= policy.retain_recall_floor(before.retain_recall):
        return []
    drop = before.retain_recall - after.retain_recall
    return [f"retain recall fell by {drop:.3f} ({before.retain_recall:.3f} -> {after.retain_recall:.3f}), "
            f"allowed {policy.max_retain_drop:.3f}"]
