"""The deletion request state machine (DESIGN.md, "Life of a deletion request")."""

from __future__ import annotations

from enum import StrEnum


class RequestState(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    NEEDS_REVIEW = "needs_review"
    UNLEARNING = "unlearning"
    VERIFYING = "verifying"
    PUBLISHED = "published"
    COMPLETED = "completed"
    NOT_MEMORIZED = "not_memorized"
    FAILED = "failed"
    DEAD_LETTER = "dead_letter"


S = RequestState

# Every legal move. UNLEARNING/VERIFYING -> QUEUED is the hand-back after a crash or a graceful
# shutdown; NEEDS_REVIEW and DEAD_LETTER -> QUEUED is an operator's replay. QUEUED/UNLEARNING ->
# PUBLISHED is a request found in a version that an earlier (crashed or superseded) job published.
# PUBLISHED -> NEEDS_REVIEW: the published version still answered a forget probe once served (canary).
TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    S.RECEIVED: frozenset({S.QUEUED, S.DUPLICATE, S.REJECTED, S.NEEDS_REVIEW, S.FAILED}),
    S.QUEUED: frozenset({S.UNLEARNING, S.PUBLISHED, S.DEAD_LETTER}),
    S.UNLEARNING: frozenset({S.VERIFYING, S.PUBLISHED, S.QUEUED, S.NOT_MEMORIZED, S.NEEDS_REVIEW, S.FAILED,
                             S.DEAD_LETTER}),
    S.VERIFYING: frozenset({S.PUBLISHED, S.QUEUED, S.NEEDS_REVIEW, S.FAILED, S.DEAD_LETTER}),
    S.PUBLISHED: frozenset({S.COMPLETED, S.NEEDS_REVIEW}),
    S.FAILED: frozenset({S.QUEUED, S.DEAD_LETTER}),
    S.NEEDS_REVIEW: frozenset({S.QUEUED}),
    S.DEAD_LETTER: frozenset({S.QUEUED}),
    S.COMPLETED: frozenset(),
    S.DUPLICATE: frozenset(),
    S.REJECTED: frozenset(),
    S.NOT_MEMORIZED: frozenset(),
}

# States a request ends in without further automatic work (an operator may still replay some).
TERMINAL_STATES = frozenset({S.COMPLETED, S.DUPLICATE, S.REJECTED, S.NOT_MEMORIZED, S.DEAD_LETTER,
                             S.NEEDS_REVIEW})

# States in which a request's deletion has not yet taken effect: its legal clock still runs. needs_review
# and dead_letter are open although no automatic work follows (they wait for an operator).
OPEN_STATES = frozenset(RequestState) - {S.COMPLETED, S.DUPLICATE, S.REJECTED, S.NOT_MEMORIZED}


def sources_of(target: RequestState) -> frozenset[RequestState]:
    """Every state from which ``target`` may be entered."""
    return frozenset(src for src, targets in TRANSITIONS.items() if target in targets)
