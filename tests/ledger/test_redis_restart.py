"""An accepted request survives a Redis crash: a test-owned redis-server with AOF, killed and restarted."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgetd.ledger import Fingerprinter, IdempotencyConflictError, Ledger, NewRequest, PayloadCipher
from forgetd.payload import DeletionPayload
from tests.processes import RedisServer

pytestmark = pytest.mark.integration
MASTER, PEPPER = os.urandom(32), os.urandom(32)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _ledger(server: RedisServer) -> Ledger:
    return Ledger(server.client(), "f", PayloadCipher(MASTER), Fingerprinter(PEPPER))


def test_a_request_accepted_before_a_redis_crash_is_there_after_restart(server: RedisServer) -> None:
    payload = DeletionPayload(texts=["Quentin Marsh was born in Turku."])
    record, _ = _ledger(server).create(NewRequest("t", "default", "pii", payload, idempotency_key="k1"))

    server.crash()
    server.start()
    ledger = _ledger(server)

    assert ledger.get(record.id).state.value == "received"
    assert ledger.payload(record.id).texts == payload.texts
    assert ledger.create(NewRequest("t", "default", "pii", payload, idempotency_key="k1")) == (record, False)
    with pytest.raises(IdempotencyConflictError):
        ledger.create(NewRequest("t", "default", "pii", DeletionPayload(texts=["Other text here"]),
                                 idempotency_key="k1"))
