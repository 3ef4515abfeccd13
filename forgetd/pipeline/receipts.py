"""Receipts: what a requester gets back once a request ends. Ids, versions, numbers; never text."""

from __future__ import annotations

import time
from typing import Any

from forgetd.ledger import DeletionRecord, RequestState


def decision_receipt(record: DeletionRecord, state: RequestState, **details: Any) -> dict[str, Any]:
    """A receipt for a request decided without an update (duplicate, rejected, needs_review, ...)."""
    return {
        "request_id": record.id,
        "lineage": record.lineage,
        "state": state.value,
        "received_at": record.created_at,
        "decided_at": time.time(),
        **details,
    }
