"""The canary: a newly served version is asked its batch's forget probes and must answer no more of
them than verification allowed it to (its ``forget_recall_limit``: a model that never saw the data
still guesses some answers; 0 where the method does not know that share).

It is judged as verification judges recall (:func:`forgetd.eval.probes.probe_hits`): a probe is
recalled when its completion, stripped and lower-cased, appears in the greedy continuation of its
prompt. Here the continuation comes from the serving system over HTTP, so the budget is counted in
UTF-8 bytes, which no tokenizer exceeds in tokens, plus the same slack: the check can only be
stricter than verification's. Probe text never leaves this module except in the request to the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, zip_longest
from math import floor

from forgetd.metrics import CANARY_CHECKS
from forgetd.payload import Probe
from forgetd.serving.sinks.http import ServingEndpoint

RECALL_SLACK_TOKENS = 2  # as forgetd.eval.probes.RECALL_SLACK_TOKENS
_TOLERANCE = 1e-9  # 0.3 * 10 is 2.9999999999999996 in floats, which must still allow 3


@dataclass(frozen=True)
class CanaryResult:
    """How many probes were asked, how many came back and how many were allowed to; ``answered_by``
    names who answered them."""

    asked: int
    recalled: int
    allowed: int
    answered_by: frozenset[str]

    @property
    def passed(self) -> bool:
        return self.recalled <= self.allowed


def select_probes(per_request: Sequence[Sequence[Probe]], limit: int) -> list[Probe]:
    """At most ``limit`` probes, taken in turn from each request so that every request is asked."""
    interleaved = chain.from_iterable(zip_longest(*per_request))
    return [probe for probe in interleaved if probe is not None][:limit]


def recalled(probe: Probe, text: str) -> bool:
    return probe.completion.strip().lower() in text.lower()


def run_canary(endpoint: ServingEndpoint, model: str, probes: Sequence[Probe], *, allowance: float = 0.0,
               lineage: str | None = None) -> CanaryResult:
    """Ask ``model`` each probe greedily; it passes when it recalls at most ``allowance`` of them.
    Raises EndpointError when the server cannot answer.

    With ``lineage``, the outcome is counted in ``forgetd_canary_checks_total`` (a check of a version);
    without, it is a comparison run (the base model) and not counted.
    """
    budgets = [len(probe.completion.encode()) + RECALL_SLACK_TOKENS for probe in probes]
    answers = endpoint.greedy(model, [probe.prompt for probe in probes], budgets)
    hits = sum(recalled(probe, text) for probe, (_, text) in zip(probes, answers, strict=True))
    allowed = floor(allowance * len(probes) + _TOLERANCE)
    result = CanaryResult(len(probes), hits, allowed, frozenset(name for name, _ in answers))
    if lineage is not None:
        CANARY_CHECKS.labels(lineage, "passed" if result.passed else "failed").inc()
    return result
