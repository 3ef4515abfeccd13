"""Delivery in the unlearning job on the tiny model: a failed delivery keeps requests published until the
reconciler has them delivered again; a candidate vLLM would refuse is never published."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY

from adapters_store import AdapterStore
from forgetd.ledger import NewRequest, RequestState, open_ledger
from forgetd.payload import DeletionPayload
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.job import run_lineage_job
from forgetd.pipeline.reconciler import reconcile
from forgetd.settings import Settings
from tests.pipeline.recording import RecordingScheduler
from tests.pipeline.test_job import _queue_person
from tests.processes import free_port

S = RequestState


def _ctx(settings: Settings, redis_client: redis.Redis, tiny_model_dir: Path, **changes: object) -> PipelineContext:
    settings = settings.model_copy(update={"model": str(tiny_model_dir), **changes})
    return PipelineContext(settings, redis_client, open_ledger(settings, redis_client),
                           AdapterStore(settings.adapters_dir), RecordingScheduler())


def _deliveries(outcome: str) -> float:
    labels = {"sink": "embedded", "lineage": "default", "outcome": outcome}
    return REGISTRY.get_sample_value("forgetd_deliveries_total", labels) or 0.0


@pytest.mark.slow
def test_a_failed_delivery_keeps_the_request_published_until_the_reconciler_delivers_it_again(
        settings: Settings, redis_client: redis.Redis, tiny_model_dir: Path) -> None:
    # Nothing listens at serving_url: the alias can never be seen to move.
    down = _ctx(settings, redis_client, tiny_model_dir, serving_url=f"http://127.0.0.1:{free_port()}",
                delivery_attempts=1, redeliver_after_s=60.0)
    request_id = _queue_person(down, 0)
    failed_before = _deliveries("failed")

    report = run_lineage_job(down, "default")

    assert report.status == "published" and report.version == 1
    assert down.ledger.get(request_id).state is S.PUBLISHED
    assert _deliveries("failed") == failed_before + 1
    assert reconcile(down, time.time()).redelivered == []  # not yet older than redeliver_after_s

    report_later = reconcile(down, time.time() + 120)
    assert report_later.redelivered == [request_id] and report_later.lineages_nudged == ["default"]
    assert down.queue("default").contains(request_id)

    up = _ctx(settings, redis_client, tiny_model_dir)  # serving reachable again (announce-only delivery)
    assert run_lineage_job(up, "default").status == "empty"  # nothing retrained
    record = up.ledger.get(request_id)
    assert record.state is S.COMPLETED and record.attempts == 1
    assert record.receipt is not None and record.receipt["adapter_version"] == 1
    assert [m.version for m in up.store.versions("default")] == [1]


@pytest.mark.slow
def test_a_candidate_vllm_would_refuse_goes_to_review_unpublished(
        settings: Settings, redis_client: redis.Redis, tiny_model_dir: Path) -> None:
    # The server's --max-lora-rank is below the lineage's rank 8: every candidate would be refused.
    ctx = _ctx(settings, redis_client, tiny_model_dir, vllm_max_lora_rank=1)
    request_id = _queue_person(ctx, 1)

    report = run_lineage_job(ctx, "default")

    assert report.status == "needs_review"
    record = ctx.ledger.get(request_id)
    assert record.state is S.NEEDS_REVIEW
    assert record.receipt is not None
    assert record.receipt["reason"] == "adapter not servable by vLLM: rank r=8 is above the server's max LoRA rank 1"
    assert ctx.store.versions("default") == []


def _files(directory: Path) -> Path:
    """A version's files; never loaded here (delivery only announces), so their content is not an adapter."""
    directory.mkdir()
    (directory / "adapter_config.json").write_text("{}")
    (directory / "adapter_model.safetensors").write_bytes(directory.name.encode())
    return directory


def test_published_requests_complete_with_a_descendant_and_go_to_review_without_one(
        settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    ctx = PipelineContext(settings, redis_client, open_ledger(settings, redis_client),
                          AdapterStore(settings.adapters_dir), RecordingScheduler())
    ids = []
    for index in range(3):  # each published in its own version, none delivered
        record, _ = ctx.ledger.create(NewRequest("t", "default", "pii", DeletionPayload(texts=[f"Text {index} here"])))
        for state in (S.QUEUED, S.PUBLISHED):
            ctx.ledger.transition(record.id, state)
        ctx.store.publish("default", _files(tmp_path / f"v{index}"), base_model="b", method="graddiff",
                          request_ids=[record.id], metrics={})
        ids.append(record.id)
    ctx.store.set_current("default", 2, reason="operator: v3 withdrawn")  # v3's request is in no version of v2's line

    assert sorted(reconcile(ctx, time.time() + 3600).redelivered) == sorted(ids)
    report = run_lineage_job(ctx, "default")

    assert report.status == "empty"  # nothing to train
    first, second, third = (ctx.ledger.get(i) for i in ids)
    assert first.state is S.COMPLETED and first.receipt is not None and first.receipt["adapter_version"] == 2
    assert second.state is S.COMPLETED
    assert third.state is S.NEEDS_REVIEW and third.receipt is not None
    assert third.receipt["reason"] == "published in a version the lineage no longer descends from"
