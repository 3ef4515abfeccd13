"""The source of truth for every deletion request: records, states, idempotency, sealed payloads."""

from __future__ import annotations

import redis

from forgetd.ledger.crypto import Fingerprinter, PayloadCipher, PayloadUnavailableError
from forgetd.ledger.records import DeletionRecord
from forgetd.ledger.states import OPEN_STATES, TERMINAL_STATES, RequestState
from forgetd.ledger.store import (
    IdempotencyConflictError,
    IllegalTransitionError,
    Ledger,
    LedgerError,
    NewRequest,
    RequestNotFoundError,
    RotationReport,
    Submission,
)
from forgetd.settings import Settings

__all__ = [
    "OPEN_STATES",
    "TERMINAL_STATES",
    "DeletionRecord",
    "Fingerprinter",
    "IdempotencyConflictError",
    "IllegalTransitionError",
    "Ledger",
    "LedgerError",
    "NewRequest",
    "PayloadCipher",
    "PayloadUnavailableError",
    "RequestNotFoundError",
    "RequestState",
    "RotationReport",
    "Submission",
    "open_ledger",
]


def open_ledger(settings: Settings, client: redis.Redis | None = None) -> Ledger:
    """The ledger of this deployment, on ``client`` or a new connection to ``settings.redis_url``."""
    return Ledger(
        client or redis.Redis.from_url(settings.redis_url),
        settings.key_prefix,
        PayloadCipher(settings.secret_bytes("master_key"), settings.previous_master_key_bytes()),
        Fingerprinter(settings.secret_bytes("hmac_key")),
    )
