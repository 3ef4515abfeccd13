"""Semantic checks of a payload that the HTTP schema cannot express.

The schema already bounds sizes and shapes; these checks look at content. Reasons are short codes
(safe to store and show: they never quote the text).
"""

from __future__ import annotations

from forgetd.ledger.crypto import normalise_text
from forgetd.payload import DeletionPayload, Probe

MIN_TEXT_CHARS = 8  # shorter than this, "forget it" would mostly erase common words


def rejection_reasons(payload: DeletionPayload) -> list[str]:
    """Every reason to reject ``payload``; empty when it may be queued."""
    reasons = []
    normalised = [normalise_text(text) for text in payload.texts]
    if any(len(text) < MIN_TEXT_CHARS for text in normalised):
        reasons.append(f"text_too_short: every text needs at least {MIN_TEXT_CHARS} characters")
    if len(set(normalised)) != len(normalised):
        reasons.append("repeated_text: the same text appears twice in one request")
    # The same prompt and completion both to forget and to keep cannot be satisfied. A shared answer
    # alone is fine: two people can be born in the same city.
    forget = {_pair(p) for p in payload.forget_probes()}
    keep = {_pair(p) for p in payload.neighbours}
    if forget & keep:
        reasons.append("conflicting_probes: a probe is both to forget and to keep")
    return reasons


def _pair(probe: Probe) -> tuple[str, str]:
    return normalise_text(probe.prompt), normalise_text(probe.completion)
