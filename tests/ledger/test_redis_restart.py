"""An accepted request survives a Redis crash: a test-owned redis-server with AOF, killed and restarted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from forgetd.ledger import Fingerprinter, IdempotencyConflictError, Ledger, NewRequest, PayloadCipher
from forgetd.payload import DeletionPayload
from tests.processes import free_port

pytestmark = pytest.mark.integration
MASTER, PEPPER = os.urandom(32), os.urandom(32)


class RedisServer:
    """A redis-server of the test's own, with an append-only file fsynced on every write."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed (make test installs it)"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def crash(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.terminate()
        server.process.wait()


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
