"""``admit``: decide what happens to a received request (DESIGN.md step 2)."""

from __future__ import annotations

import logging

from forgetd.filters.validation import rejection_reasons
from forgetd.ledger import DeletionRecord, RequestState
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.receipts import decision_receipt

logger = logging.getLogger(__name__)

S = RequestState


def admit_request(ctx: PipelineContext, request_id: str) -> RequestState:
    """Validate, de-duplicate and queue one request. Idempotent: a redelivered message finds the
    request already decided and only makes sure a queued request sits in its lineage's queue."""
    record = ctx.ledger.get(request_id)
    if record.state is S.QUEUED:
        _enqueue(ctx, record)
        return record.state
    if record.state is not S.RECEIVED:
        return record.state

    payload = ctx.ledger.payload(request_id)
    reasons = rejection_reasons(payload)
    if reasons:
        return _decide(ctx, request_id, S.REJECTED, reason="; ".join(reasons))

    verdict = ctx.duplicates.claim(record.lineage, request_id, payload.texts)
    if verdict.is_duplicate:
        return _decide(ctx, request_id, S.DUPLICATE, reason="every text is already forgotten or pending",
                       duplicate_of=sorted(verdict.owners))

    ctx.ledger.transition(request_id, S.QUEUED, sources=[S.RECEIVED])
    _enqueue(ctx, record)
    logger.info("request %s queued on lineage %s", request_id, record.lineage)
    return S.QUEUED


def _decide(ctx: PipelineContext, request_id: str, state: RequestState, *, reason: str,
            **details: object) -> RequestState:
    record = ctx.ledger.get(request_id)
    receipt = decision_receipt(record, state, reason=reason, **details)
    ctx.ledger.transition(request_id, state, sources=[S.RECEIVED], reason=reason, receipt=receipt)
    # Nothing will be trained on this text: destroy it now rather than at the window's end.
    ctx.ledger.shred(request_id)
    logger.info("request %s %s", request_id, state.value)
    return state


def _enqueue(ctx: PipelineContext, record: DeletionRecord) -> None:
    # Lineage and arrival time never change, so the record read at the start of admission will do.
    queue = ctx.queue(record.lineage)
    depth = queue.push(record.id, since=record.created_at)
    # A full batch starts now; otherwise the first request of a batch starts the wait for more.
    if depth >= ctx.settings.batch_max_size:
        ctx.scheduler.run_batch(record.lineage, 0.0)
    elif depth == 1:
        ctx.scheduler.run_batch(record.lineage, ctx.settings.batch_max_wait_s)
