"""Request and response bodies of the intake API, one family per resource."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from forgetd.ledger import DeletionRecord
from forgetd.payload import DeletionPayload, RequestKind

LineageName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Adapter lineage.")]


class DeletionCreate(DeletionPayload):
    """``POST /v1/deletions``: what to forget, how to check it, and what to keep."""

    kind: RequestKind = Field("other", description="Why the text must go: pii, copyright, harmful, other.")
    lineage: LineageName | None = Field(None, description="Target lineage; default from settings.")

    def payload(self) -> DeletionPayload:
        return DeletionPayload(texts=self.texts, probes=self.probes, neighbours=self.neighbours)


class DeletionStatus(BaseModel):
    """``GET /v1/deletions/{id}``: where a request is. Never the text."""

    model_config = ConfigDict(frozen=True)

    id: str
    state: str
    lineage: str
    kind: str
    created_at: datetime
    updated_at: datetime
    attempts: int
    text_count: int
    probe_count: int
    reason: str | None = None
    receipt: dict[str, Any] | None = None
    payload_destroyed_at: datetime | None = None

    @classmethod
    def of(cls, record: DeletionRecord) -> DeletionStatus:
        return cls(
            id=record.id, state=record.state.value, lineage=record.lineage, kind=record.kind,
            created_at=_utc(record.created_at), updated_at=_utc(record.updated_at),
            attempts=record.attempts, text_count=record.text_count, probe_count=record.probe_count,
            reason=record.reason, receipt=record.receipt,
            payload_destroyed_at=_utc(record.shredded_at) if record.shredded_at else None,
        )


class AuditEntry(BaseModel):
    """One state change of a request."""

    state: str
    previous_state: str | None
    at: datetime

    @classmethod
    def of(cls, entry: dict[str, str]) -> AuditEntry:
        return cls(state=entry["to"], previous_state=entry["from"] or None, at=_utc(float(entry["at"])))


class AdapterVersion(BaseModel):
    version: int
    served_name: str
    parent: int | None
    base_model: str
    method: str
    request_ids: list[str]
    metrics: dict[str, float]
    created_at: str


class LineageAdapters(BaseModel):
    """``GET /v1/adapters/{lineage}``: a lineage's current version and its history."""

    lineage: str
    current_version: int | None
    versions: list[AdapterVersion]


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)
