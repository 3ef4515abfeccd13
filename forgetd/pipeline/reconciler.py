"""The reconciler: finds requests whose next step was lost and asks for it again.

Late acknowledgement covers a worker that dies while holding a message, but not a message that never
arrived (the broker was down when the API sent it, someone deleted it) or one that Redis will only
redeliver after its visibility timeout (hours). Every request that sits in a non-terminal state
longer than ``stuck_after_s`` is nudged: admission again for ``received``, a batch job for the
lineage of ``queued`` and in-flight requests. Each nudge is idempotent, so running the reconciler
too often only costs a few Redis reads. Attempts are counted by the job itself, which dead-letters
a request after ``max_attempts``.

Every lineage with a published version is nudged on each pass as well: a job with nothing to train
delivers the current version again (:func:`forgetd.pipeline.delivery.keep_current`).

A request ``published`` for longer than ``redeliver_after_s`` is one whose version is in the store but
whose delivery to serving failed (or whose job died before delivering): its lineage's job delivers the
current version again and completes it (:func:`forgetd.pipeline.delivery.carried_by`). Delivery is
cheap next to training, so this timeout is shorter than ``stuck_after_s``, and it spends no attempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from forgetd.ledger import DeletionRecord, RequestState
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.locks import lease_is_held

logger = logging.getLogger(__name__)

S = RequestState
IN_FLIGHT = (S.UNLEARNING, S.VERIFYING)


@dataclass
class ReconcileReport:
    readmitted: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    lineages_nudged: list[str] = field(default_factory=list)
    redelivered: list[str] = field(default_factory=list)  # published, not completed: delivered again


def reconcile(ctx: PipelineContext, now: float) -> ReconcileReport:
    """One pass over the stuck requests; returns what was nudged (ids only)."""
    report = ReconcileReport()
    stuck_before = now - ctx.settings.stuck_after_s
    lineages: set[str] = set()
    for record in _stuck(ctx, [S.RECEIVED], stuck_before):
        ctx.scheduler.admit(record.id)
        report.readmitted.append(record.id)
    undelivered = _stuck(ctx, [S.PUBLISHED], now - ctx.settings.redeliver_after_s)
    for record in _stuck(ctx, [S.QUEUED, *IN_FLIGHT], stuck_before) + undelivered:
        if _restore_to_queue(ctx, record):
            report.requeued.append(record.id)
        lineages.add(record.lineage)
    report.redelivered = [record.id for record in undelivered]
    # Every published lineage gets a job too: with nothing to train, the job re-delivers the current
    # version, so a serving system that restarted (and lost it) is brought back within one interval.
    lineages.update(ctx.store.lineages())
    for lineage in sorted(lineages):
        # A running job picks the rest up when it finishes.
        if not lease_is_held(ctx.redis, ctx.settings.key_prefix, lineage):
            ctx.scheduler.run_batch(lineage, 0.0)
            report.lineages_nudged.append(lineage)
    if report.readmitted or report.requeued or report.redelivered:
        logger.warning("reconciler: readmitted %d, requeued %d (%d to deliver again), nudged lineages %s",
                       len(report.readmitted), len(report.requeued), len(report.redelivered),
                       report.lineages_nudged)
    return report


def _stuck(ctx: PipelineContext, states: list[RequestState], before: float) -> list[DeletionRecord]:
    records = []
    for state in states:
        for request_id in ctx.ledger.ids_in_state(state):
            record = ctx.ledger.get(request_id)
            if record.state is state and record.updated_at < before:
                records.append(record)
    return records


def _restore_to_queue(ctx: PipelineContext, record: DeletionRecord) -> bool:
    """Put a queued request back in its lineage's queue if it fell out of both queue and in-flight set
    (a crash between the ledger write and the queue write). True if it had to."""
    queue = ctx.queue(record.lineage)
    if record.id in queue.inflight() or queue.contains(record.id):
        return False
    if record.state is S.QUEUED:
        queue.push(record.id, since=record.created_at)
    else:
        queue.hand_back({record.id: record.created_at})
    return True
