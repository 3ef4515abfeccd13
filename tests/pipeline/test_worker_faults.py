"""Fault injection on real processes: a worker SIGKILLed mid-job and between publish and completion, lost
and duplicated messages, an API crash between accepting requests and admitting them, Redis (ledger and
broker) killed and restarted during a job, a worker killed without its beat.

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
from forgetd.client import ForgetdClient
from forgetd.ledger import Ledger, NewRequest, RequestState, open_ledger
from forgetd.models.tiny import default_tiny_people, fact_probes
from forgetd.payload import DeletionPayload
from forgetd.pipeline.celery_app import create_celery_app
from forgetd.pipeline.scheduling import CeleryScheduler
from forgetd.settings import Settings
from tests.conftest import API_TOKEN
from tests.processes import (
    RedisServer,
    alive,
    children,
    environment,
    free_port,
    kill_group,
    start,
    stop,
    wait_until_ready,
)

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


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the process tree from Linux /proc")
def test_a_worker_killed_alone_takes_its_embedded_beat_with_it(settings: Settings, tmp_path: Path) -> None:
    worker = start("worker", environment(settings), tmp_path / "worker.log")
    try:
        _wait_for(lambda: bool(children(worker.pid)), "the embedded beat to start", timeout_s=120)
        beat = children(worker.pid)[0]
        worker.kill()  # SIGKILL to the worker's PID alone, as an OOM kill or a bare `kill -9` does
        worker.wait(timeout=10)
        _wait_for(lambda: not alive(beat), "the orphaned beat to exit", timeout_s=15)
    finally:
        stop([worker])


def test_requests_accepted_before_an_api_crash_are_carried_out_after_it(
        settings: Settings, redis_client: redis.Redis, tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"model": str(tiny_model_dir)})
    ledger = open_ledger(settings, redis_client)
    port = free_port()
    env = environment(settings, api_port=str(port), **FAST_RECOVERY)
    url = f"http://127.0.0.1:{port}"
    people = default_tiny_people()
    first_api = start("api", env, tmp_path / "api-1.log")
    try:
        wait_until_ready(url, [first_api])
        with ForgetdClient(url, API_TOKEN) as client:
            accepted = [client.submit(people[i].statements, probes=[(probe.prompt, probe.completion) for probe
                                                                     in fact_probes([people[i]])])["id"]
                        for i in (1, 2)]
        # The API dies before anyone admits the requests, and the admission message dies with the
        # broker's queue: all that is left is what the API stored before answering 202.
        kill_group(first_api, signal.SIGKILL)
        first_api.wait(timeout=10)
        redis_client.delete(settings.queue_name)
    finally:
        stop([first_api])
    assert all(ledger.get(i).state is S.RECEIVED for i in accepted)

    second_api = start("api", env, tmp_path / "api-2.log")
    worker = start("worker", env, tmp_path / "worker.log")
    try:
        wait_until_ready(url, [second_api, worker])
        with ForgetdClient(url, API_TOKEN) as client:
            _wait_for(lambda: all(client.status(i)["state"] == "completed" for i in accepted), "both to complete")
    finally:
        stop([second_api, worker])
    for request_id in accepted:
        trail = [entry["to"] for entry in ledger.audit_trail(request_id)]
        assert trail.count("received") == 1 and trail.count("completed") == 1, trail


def test_a_worker_killed_between_publish_and_completion_completes_on_the_same_version(
        settings: Settings, redis_client: redis.Redis, tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"model": str(tiny_model_dir)})
    ledger = open_ledger(settings, redis_client)
    serve_port = free_port()
    # Serving is not up yet: the version is published, but its delivery cannot finish, so the worker
    # is caught between publish and completion, where it is killed.
    env = environment(settings, serve_port=str(serve_port), serving_url=f"http://127.0.0.1:{serve_port}",
                      delivery_timeout_s="2", delivery_attempts="1", redeliver_after_s="2", **FAST_RECOVERY)
    first = start("worker", env, tmp_path / "worker-1.log")
    try:
        request_id = _submit(settings, ledger, person_index=7)
        _wait_for(lambda: ledger.get(request_id).state is S.PUBLISHED, "the version to be published")
        kill_group(first, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop([first])
    assert ledger.get(request_id).state is S.PUBLISHED

    processes = [start("serve", env, tmp_path / "serve.log"), start("worker", env, tmp_path / "worker-2.log")]
    try:
        _wait_for(lambda: ledger.get(request_id).state is S.COMPLETED, "the request to complete")
    finally:
        stop(processes)

    versions = AdapterStore(settings.adapters_dir).versions("default")
    assert [m.request_ids for m in versions] == [(request_id,)]  # delivered again, never retrained
    receipt = ledger.get(request_id).receipt
    assert receipt is not None and receipt["adapter_version"] == 1
    assert [entry["to"] for entry in ledger.audit_trail(request_id)].count("completed") == 1


def _states(settings: Settings, server: RedisServer, ids: list[str]) -> set[RequestState] | None:
    """The requests' states, read on a fresh connection; None while Redis is down."""
    try:
        ledger = open_ledger(settings, server.client())
        return {ledger.get(request_id).state for request_id in ids}
    except redis.ConnectionError:
        return None


def test_a_redis_crash_during_a_job_loses_no_request(settings: Settings, tiny_model_dir: Path,
                                                      tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")  # the ledger and the broker, with an fsynced append-only file
    server.start()
    settings = settings.model_copy(update={"model": str(tiny_model_dir),
                                           "redis_url": f"redis://127.0.0.1:{server.port}/0"})
    worker = start("worker", environment(settings, **FAST_RECOVERY), tmp_path / "worker.log")
    try:
        ledger = open_ledger(settings, server.client())
        ids = [_submit(settings, ledger, person_index=i) for i in (1, 2)]
        _wait_for(lambda: ledger.get(ids[0]).state is S.UNLEARNING, "the job to start")
        server.crash()
        time.sleep(2)
        server.start()
        _wait_for(lambda: _states(settings, server, ids) == {S.COMPLETED}, "both to complete")
    finally:
        stop([worker])
        server.stop()

    server.start()
    try:
        ledger = open_ledger(settings, server.client())
        for request_id in ids:
            trail = [entry["to"] for entry in ledger.audit_trail(request_id)]
            assert trail.count("completed") == 1, trail
        published = [i for m in AdapterStore(settings.adapters_dir).versions("default") for i in m.request_ids]
        assert sorted(published) == sorted(ids)  # each trained into exactly one version
    finally:
        server.stop()
