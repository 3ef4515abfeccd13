"""Fault injection on real processes: a worker SIGKILLed mid-job, lost and duplicated messages.

Every accepted request must reach ``completed`` exactly once, on exactly one published version.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from adapters_store import AdapterStore
from forgetd.ledger import Ledger, NewRequest, RequestState, open_ledger
from forgetd.models.tiny import default_tiny_people, fact_probes
from forgetd.payload import DeletionPayload
from forgetd.pipeline.celery_app import create_celery_app
from forgetd.pipeline.scheduling import CeleryScheduler
from forgetd.settings import Settings
from tests.processes import environment, kill_group, start, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]
S = RequestState
# Short lease and reconcile periods, so that recovery takes seconds instead of minutes.
FAST_RECOVERY = {"lease_ttl_s": "2", "stuck_after_s": "2", "reconcile_interval_s": "2", "batch_max_wait_s": "0"}


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _submit(settings: Settings, ledger: Ledger, person_index: int = 3, admit_messages: int = 1) -> str:
    """Store a request to forget one tiny-model person; send its admit message ``admit_messages`` times
    (0: the message was lost, 2: delivered twice)."""
    people = default_tiny_people()
    person = people[person_index]
    payload = DeletionPayload(texts=person.statements, probes=fact_probes([person]),
                              neighbours=fact_probes([p for p in people if p is not person]))
    record, _ = ledger.create(NewRequest("t", "default", "pii", payload))
    scheduler = CeleryScheduler(create_celery_app(settings), settings)
    for _ in range(admit_messages):
        scheduler.admit(record.id)
    return record.id


def test_a_worker_killed_mid_job_loses_nothing(settings: Settings, redis_client: redis.Redis,
                                               tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"model": str(tiny_model_dir)})
    ledger = open_ledger(settings, redis_client)
    env = environment(settings, **FAST_RECOVERY)
    first = start("worker", env, tmp_path / "worker-1.log")
    try:
        request_id = _submit(settings, ledger)
        _wait_for(lambda: ledger.get(request_id).state is S.UNLEARNING, "the job to start")
        kill_group(first, signal.SIGKILL)  # the worker and its embedded beat, as when a pod is killed
        first.wait(timeout=10)
        assert ledger.get(request_id).state is S.UNLEARNING  # killed mid-job, not after it

        second = start("worker", env, tmp_path / "worker-2.log")
        try:
            _wait_for(lambda: ledger.get(request_id).state is S.COMPLETED, "the request to complete")
        finally:
            stop([second])
    finally:
        stop([first])

    record = ledger.get(request_id)
    assert record.attempts == 2
    trail = [entry["to"] for entry in ledger.audit_trail(request_id)]
    assert trail.count("completed") == 1 and trail.count("unlearning") == 2
    versions = AdapterStore(settings.adapters_dir).versions("default")
    assert [m.request_ids for m in versions] == [(request_id,)]


def test_lost_and_duplicated_messages_end_in_exactly_one_completion(
        settings: Settings, redis_client: redis.Redis, tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"model": str(tiny_model_dir)})
    ledger = open_ledger(settings, redis_client)
    lost = _submit(settings, ledger, person_index=4, admit_messages=0)
    twice = _submit(settings, ledger, person_index=5, admit_messages=2)
    CeleryScheduler(create_celery_app(settings), settings).run_batch("default", 0.0)  # a spurious batch job

    worker = start("worker", environment(settings, **FAST_RECOVERY), tmp_path / "worker.log")
    try:
        _wait_for(lambda: all(ledger.get(i).state is S.COMPLETED for i in (lost, twice)), "both to complete")
    finally:
        stop([worker])

    for request_id in (lost, twice):
        trail = [entry["to"] for entry in ledger.audit_trail(request_id)]
        assert trail.count("queued") == 1 and trail.count("completed") == 1, trail
        assert ledger.get(request_id).attempts == 1
    published = [i for m in AdapterStore(settings.adapters_dir).versions("default") for i in m.request_ids]
    assert sorted(published) == sorted([lost, twice])


def test_sigterm_lets_the_running_job_finish_before_the_worker_exits(
        settings: Settings, redis_client: redis.Redis, tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"model": str(tiny_model_dir)})
    ledger = open_ledger(settings, redis_client)
    worker = start("worker", environment(settings, batch_max_wait_s="0"), tmp_path / "worker.log")
    try:
        request_id = _submit(settings, ledger, person_index=6)
        _wait_for(lambda: ledger.get(request_id).state is S.UNLEARNING, "the job to start")
        worker.send_signal(signal.SIGTERM)
        exit_code = worker.wait(timeout=300)
    finally:
        stop([worker])

    assert exit_code == 0
    assert ledger.get(request_id).state is S.COMPLETED
    assert ledger.get(request_id).attempts == 1
