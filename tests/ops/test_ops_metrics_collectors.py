"""The scrape-time metrics the dashboard and the alerts need: read from the ledger, Redis and CUDA."""

from __future__ import annotations

import os
import sys
import time
import types
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from forgetd.ledger import OPEN_STATES, Fingerprinter, Ledger, NewRequest, PayloadCipher, RequestState
from forgetd.metrics import GpuMemoryCollector, LedgerSnapshot, RedisUpCollector, RequestStateCollector
from forgetd.payload import DeletionPayload

S = RequestState


@pytest.fixture
def ledger(redis_client: redis.Redis, key_prefix: str) -> Ledger:
    return Ledger(redis_client, key_prefix, PayloadCipher(os.urandom(32)), Fingerprinter(os.urandom(32)))


def _create(ledger: Ledger, text: str) -> str:
    payload = DeletionPayload(texts=[text])
    record, _ = ledger.create(NewRequest(tenant="t", lineage="default", kind="other", payload=payload))
    return record.id


def _scrape(*collectors: Collector) -> str:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry).decode()


def test_open_states_are_those_whose_deletion_has_not_taken_effect() -> None:
    assert {S.COMPLETED, S.DUPLICATE, S.REJECTED, S.NOT_MEMORIZED}.isdisjoint(OPEN_STATES)
    assert {S.RECEIVED, S.QUEUED, S.NEEDS_REVIEW, S.DEAD_LETTER, S.FAILED} <= OPEN_STATES


def test_oldest_created_at_per_state(ledger: Ledger) -> None:
    assert ledger.oldest_created_at(OPEN_STATES) == {}
    first = _create(ledger, "first")
    time.sleep(0.01)
    second = _create(ledger, "second")
    third = _create(ledger, "third")
    ledger.transition(second, S.QUEUED)
    ledger.transition(third, S.REJECTED)

    oldest = ledger.oldest_created_at(OPEN_STATES)

    assert set(oldest) == {S.RECEIVED, S.QUEUED}
    assert oldest[S.RECEIVED] == pytest.approx(ledger.get(first).created_at, abs=1e-3)
    assert oldest[S.QUEUED] == pytest.approx(ledger.get(second).created_at, abs=1e-3)
    assert S.REJECTED not in ledger.oldest_created_at([S.QUEUED, S.DUPLICATE])


def test_request_state_collector_exports_counts_and_ages() -> None:
    snapshot = LedgerSnapshot(counts={"queued": 3, "completed": 7}, oldest_age_s={"queued": 86400.0})

    text = _scrape(RequestStateCollector(lambda: snapshot))

    assert 'forgetd_requests{state="queued"} 3.0' in text
    assert 'forgetd_requests{state="completed"} 7.0' in text
    assert 'forgetd_oldest_request_age_seconds{state="queued"} 86400.0' in text


def test_an_unreadable_ledger_leaves_the_families_empty_instead_of_failing_the_scrape() -> None:
    text = _scrape(RequestStateCollector(lambda: None), RedisUpCollector(lambda: False))

    assert "# TYPE forgetd_requests gauge" in text
    assert "forgetd_requests{" not in text
    assert "forgetd_redis_up 0.0" in text


def test_redis_up_follows_the_ping() -> None:
    assert "forgetd_redis_up 1.0" in _scrape(RedisUpCollector(lambda: True))


class _FakeCuda:
    def __init__(self, initialized: bool) -> None:
        self._initialized = initialized

    def is_initialized(self) -> bool:
        return self._initialized

    def device_count(self) -> int:
        return 1

    def memory_allocated(self, index: int) -> int:
        return 1000

    def memory_reserved(self, index: int) -> int:
        return 2000

    def max_memory_allocated(self, index: int) -> int:
        return 1500

    def get_device_properties(self, index: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(total_memory=80_000)


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    fake = types.SimpleNamespace(cuda=_FakeCuda(initialized=True))
    monkeypatch.setitem(sys.modules, "torch", fake)
    yield fake


def test_gpu_memory_is_read_from_an_initialised_cuda(fake_torch: types.SimpleNamespace) -> None:
    text = _scrape(GpuMemoryCollector())

    assert 'forgetd_gpu_memory_bytes{device="cuda:0",kind="allocated"} 1000.0' in text
    assert 'forgetd_gpu_memory_bytes{device="cuda:0",kind="reserved"} 2000.0' in text
    assert 'forgetd_gpu_memory_bytes{device="cuda:0",kind="peak_allocated"} 1500.0' in text
    assert 'forgetd_gpu_memory_bytes{device="cuda:0",kind="total"} 80000.0' in text


def test_gpu_memory_never_initialises_cuda_itself(fake_torch: types.SimpleNamespace) -> None:
    fake_torch.cuda = _FakeCuda(initialized=False)

    text = _scrape(GpuMemoryCollector())

    assert "# TYPE forgetd_gpu_memory_bytes gauge" in text
    assert "forgetd_gpu_memory_bytes{" not in text
