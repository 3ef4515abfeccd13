"""The non-sensitive part of a deletion request: what the ledger shows, what receipts are made of."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from forgetd.ledger.states import RequestState
from forgetd.payload import RequestKind


def iso_utc(timestamp: float) -> str:
    """ISO-8601 in UTC: how receipts and every API response show times."""
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


# Hash fields that hold the sealed payload; everything else in a record is safe to show.
SEALED_FIELDS = ("wrapped_key", "ciphertext")


@dataclass(frozen=True)
class DeletionRecord:
    id: str
    tenant: str
    lineage: str
    kind: RequestKind
    state: RequestState
    created_at: float
    updated_at: float
    text_count: int
    probe_count: int
    attempts: int = 0
    reason: str | None = None
    batch_id: str | None = None
    receipt: dict[str, Any] | None = None
    shredded_at: float | None = None
    payload_present: bool = field(default=True, repr=False)

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> DeletionRecord:
        return cls(
            id=raw["id"],
            tenant=raw["tenant"],
            lineage=raw["lineage"],
            kind=raw["kind"],  # type: ignore[arg-type]  # validated on write
            state=RequestState(raw["state"]),
            created_at=float(raw["created_at"]),
            updated_at=float(raw["updated_at"]),
            text_count=int(raw["text_count"]),
            probe_count=int(raw["probe_count"]),
            attempts=int(raw.get("attempts", 0)),
            reason=raw.get("reason") or None,
            batch_id=raw.get("batch_id") or None,
            receipt=json.loads(raw["receipt"]) if raw.get("receipt") else None,
            shredded_at=float(raw["shredded_at"]) if raw.get("shredded_at") else None,
            payload_present=all(name in raw for name in SEALED_FIELDS),
        )
