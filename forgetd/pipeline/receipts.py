"""Receipts: what a requester gets back once a request ends. Ids, versions, numbers; never text."""

from __future__ import annotations

import time
from typing import Any

from forgetd.ledger import DeletionRecord, RequestState
from forgetd.ledger.records import iso_utc


def decision_receipt(record: DeletionRecord, state: RequestState, **details: Any) -> dict[str, Any]:
    """A receipt for a request that reached ``state``; ``details`` add versions, metrics, reasons."""
    return {
        "request_id": record.id,
        "lineage": record.lineage,
        "state": state.value,
        "received_at": iso_utc(record.created_at),
        "decided_at": iso_utc(time.time()),
        **details,
    }
