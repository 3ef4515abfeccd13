"""Issue 4's targets, judged on a finished benchmark run: every report says which it meets and which it misses.

The yardstick is gold (retrained without the forgotten subjects): forgetting less than it is a leak, more
than it is damage. Each quality target bounds one of a method's scores by a constant or by gold's score
of the same run; the comparison targets set the method under test against every baseline of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

Row = dict[str, Any]  # one method's scores in report.json
REFERENCES = ("original", "gold", "gold_reseeded")  # rows of the report that did not unlearn the stream
FULL_NPO = "full_npo"
FULL_NPO_COMPUTE_SHARE = 0.1  # the method must spend at most a tenth of full-parameter NPO's compute


@dataclass(frozen=True)
class Verdict:
    """One target on one method: the measured value, the bound it is held to, and whether it holds."""

    target: str
    value: float
    bound: float
    at_most: bool  # the value must be at most the bound (else at least)

    @property
    def met(self) -> bool:
        return self.value <= self.bound if self.at_most else self.value >= self.bound

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


@dataclass(frozen=True)
class QualityTarget:
    """``measure(row)`` against ``bound(gold)``."""

    target: str
    measure: Callable[[Row, Row], float | None]
    bound: Callable[[Row], float]
    at_most: bool = True

    def judge(self, row: Row, gold: Row) -> Verdict | None:
        value = self.measure(row, gold)
        return None if value is None else Verdict(self.target, value, self.bound(gold), self.at_most)


def _score(key: str) -> Callable[[Row, Row], float | None]:
    return lambda row, _gold: row.get(key)


def _distance_to_gold(key: str) -> Callable[[Row, Row], float | None]:
    return lambda row, gold: None if row.get(key) is None else abs(row[key] - gold[key])


QUALITY_TARGETS: tuple[QualityTarget, ...] = (
    QualityTarget("forget recall <= gold's + 0.05", _score("forget_recall"), lambda g: g["forget_recall"] + 0.05),
    QualityTarget("forget quality p >= 0.05", _score("forget_quality"), lambda _g: 0.05, at_most=False),
    QualityTarget("retain utility >= 0.95", _score("retain_utility"), lambda _g: 0.95, at_most=False),
    QualityTarget("general utility >= 0.95", _score("general_utility"), lambda _g: 0.95, at_most=False),
    QualityTarget("MIA AUC within 0.05 of gold's", _distance_to_gold("mia_auc"), lambda _g: 0.05),
    QualityTarget("relearn recovery <= gold's + 0.1", _score("relearn_recovery"),
                  lambda g: g["relearn_recovery"] + 0.1),
    QualityTarget("quant recovery <= 0.05", _score("quant_recovery"), lambda _g: 0.05),
    QualityTarget("cost per request, last 10 over first 10 <= 1.2", _score("cost_growth"), lambda _g: 1.2),
)


def judge_targets(methods: dict[str, Row], method: str, compute_key: str) -> dict[str, list[dict[str, Any]]]:
    """Every stream method's verdicts on the quality targets, and ``method``'s against each baseline of
    the run: forget quality and retain utility at least theirs, compute (``compute_key``: CPU or GPU
    seconds per request) at most theirs, and a tenth of full-parameter NPO's where it ran."""
    gold = methods["gold"]
    verdicts = {name: [v.as_dict() for t in QUALITY_TARGETS if (v := t.judge(row, gold)) is not None]
                for name, row in methods.items() if name not in REFERENCES}
    verdicts[method] += [v.as_dict() for v in _against_baselines(methods, method, compute_key)]
    return verdicts


def _against_baselines(methods: dict[str, Row], method: str, compute_key: str) -> list[Verdict]:
    ours = methods[method]
    found = []
    for name, row in methods.items():
        if name in (*REFERENCES, method):
            continue
        found += [Verdict(f"forget quality >= {name}'s", ours["forget_quality"], row["forget_quality"], False),
                  Verdict(f"retain utility >= {name}'s", ours["retain_utility"], row["retain_utility"], False),
                  Verdict(f"compute per request <= {name}'s", ours[compute_key], row[compute_key], True)]
    if FULL_NPO in methods:
        found.append(Verdict(f"compute per request <= {FULL_NPO_COMPUTE_SHARE:g} x {FULL_NPO}'s", ours[compute_key],
                             FULL_NPO_COMPUTE_SHARE * methods[FULL_NPO][compute_key], True))
    return found
