"""An operator's replay: put a dead-lettered or held request back in its lineage's queue."""

from __future__ import annotations

import logging

from forgetd.filters.duplicates import ExactDuplicateIndex
from forgetd.ledger import DeletionRecord, Ledger, PayloadUnavailableError, RequestState
from forgetd.pipeline.lineage_queue import LineageQueue
from forgetd.pipeline.scheduling import TaskScheduler

logger = logging.getLogger(__name__)

REPLAYABLE = frozenset({RequestState.DEAD_LETTER, RequestState.NEEDS_REVIEW})


def replay_request(ledger: Ledger, scheduler: TaskScheduler, request_id: str) -> DeletionRecord:
    """Queue the request again with a fresh attempt budget; IllegalTransitionError if it is not
    dead-lettered or held for review."""
    ledger.transition(request_id, RequestState.QUEUED, sources=REPLAYABLE, attempts=0,
                      reason="replayed by an operator", receipt=None)
    record = ledger.get(request_id)
    _reclaim_fingerprints(ledger, record)
    LineageQueue(ledger.redis, ledger.prefix, record.lineage).push(request_id, since=record.created_at)
    scheduler.run_batch(record.lineage, 0.0)
    logger.warning("request %s replayed by an operator", request_id)
    return record


def _reclaim_fingerprints(ledger: Ledger, record: DeletionRecord) -> None:
    """A dead-lettered request gave up its duplicate claims; pending again, it takes them back (only
    those no newer request holds). An unreadable payload will dead-letter the request again anyway."""
    try:
        texts = ledger.payload(record.id).texts
    except PayloadUnavailableError:
        return
    ExactDuplicateIndex(ledger.redis, ledger.prefix, ledger.fingerprinter).claim(record.lineage, record.id, texts)
