"""``admit``: decide what happens to a received request (DESIGN.md step 2)."""

from __future__ import annotations

import logging

from forgetd.filters.validation import rejection_reasons
from forgetd.ledger import DeletionRecord, RequestState
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.receipts import decision_receipt

logger = logging.getLogger(__name__)

S = RequestState
# Requests a near-duplicate can be a duplicate of: pending ones and completed ones. One given up
# (dead-lettered, needs review) or decided otherwise will not carry the text out for it.
_LIVE = frozenset({S.RECEIVED, S.QUEUED, S.UNLEARNING, S.VERIFYING, S.PUBLISHED, S.FAILED, S.COMPLETED})


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
    near = _near_duplicate_of(ctx, record, payload.texts)
    if near:
        ctx.duplicates.release(request_id)  # it will not be carried out: its texts' claims go back
        return _decide(ctx, request_id, S.DUPLICATE, reason="a near-duplicate of a pending or forgotten request",
                       duplicate_of=near)

    ctx.ledger.transition(request_id, S.QUEUED, sources=[S.RECEIVED])
    _enqueue(ctx, record)
    logger.info("request %s queued on lineage %s", request_id, record.lineage)
    return S.QUEUED


def _near_duplicate_of(ctx: PipelineContext, record: DeletionRecord, texts: list[str]) -> list[str]:
    """Live earlier requests of the lineage this one nearly duplicates. Exact matches (similarity 1) are
    left to the exact-duplicate claims, which own their release semantics; a near-duplicate is taken out
    of the index again, so later requests are compared with requests that will be carried out."""
    index = ctx.near_duplicates
    verdict = index.check_and_add(record.lineage, record.id, texts)
    owners = [rid for rid in verdict.owners
              if verdict.similar[rid] < 1.0 and ctx.ledger.get(rid).state in _LIVE]
    if owners:
        index.release(record.id)
    return owners


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
