"""The reconciler on a real Redis: lost admissions and lost queue entries are nudged, live work is not."""

from __future__ import annotations

import time
from pathlib import Path

from forgetd.ledger import NewRequest, RequestState
from forgetd.payload import DeletionPayload
from forgetd.pipeline.admission import admit_request
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.locks import LineageLease
from forgetd.pipeline.reconciler import reconcile
from tests.adapters_store.conftest import PUBLISH_DEFAULTS, write_peft_dir
from tests.pipeline.recording import RecordingScheduler

S = RequestState
LATER = 3600.0  # "now" an hour on: everything created in the test counts as stuck


def _received(ctx: PipelineContext, text: str = "Mira Solberg works as a potter.") -> str:
    record, _ = ctx.ledger.create(NewRequest("t", "default", "pii", DeletionPayload(texts=[text])))
    return record.id


def test_a_request_whose_admit_message_was_lost_is_admitted_again(ctx: PipelineContext,
                                                                   scheduler: RecordingScheduler) -> None:
    request_id = _received(ctx)

    report = reconcile(ctx, time.time() + LATER)

    assert report.readmitted == [request_id]
    assert scheduler.admitted == [request_id]


def test_recent_requests_are_left_alone(ctx: PipelineContext, scheduler: RecordingScheduler) -> None:
    _received(ctx)

    report = reconcile(ctx, time.time())

    assert report.readmitted == [] and scheduler.admitted == [] and scheduler.batches == []


def test_a_queued_request_missing_from_its_queue_is_put_back_and_its_lineage_nudged(
        ctx: PipelineContext, scheduler: RecordingScheduler) -> None:
    request_id = _received(ctx)
    admit_request(ctx, request_id)
    ctx.redis.delete(ctx.settings.key("queue", "default"))  # as if the queue write was lost

    report = reconcile(ctx, time.time() + LATER)

    assert report.requeued == [request_id]
    assert ctx.queue("default").contains(request_id)
    assert scheduler.batches[-1] == ("default", 0.0)


def test_an_in_flight_request_of_a_dead_job_is_resumed_by_a_new_batch_job(
        ctx: PipelineContext, scheduler: RecordingScheduler) -> None:
    request_id = _received(ctx)
    admit_request(ctx, request_id)
    ctx.queue("default").claim(8)
    ctx.ledger.transition(request_id, S.UNLEARNING, count_attempt=True)  # then the worker died

    report = reconcile(ctx, time.time() + LATER)

    assert report.requeued == []  # still in the in-flight set: the next job resumes it
    assert report.lineages_nudged == ["default"]


def test_a_lineage_with_a_running_job_is_not_nudged(ctx: PipelineContext, scheduler: RecordingScheduler) -> None:
    request_id = _received(ctx)
    admit_request(ctx, request_id)
    scheduler.batches.clear()

    with LineageLease(ctx.redis, ctx.settings.key_prefix, "default") as token:
        assert token is not None
        report = reconcile(ctx, time.time() + LATER)

    assert report.lineages_nudged == [] and scheduler.batches == []


def test_every_published_lineage_gets_a_job_that_checks_serving_still_has_its_version(
        ctx: PipelineContext, scheduler: RecordingScheduler, tmp_path: Path) -> None:
    for lineage in ("default", "support-bot"):
        ctx.store.publish(lineage, write_peft_dir(tmp_path / lineage), **PUBLISH_DEFAULTS)
    with LineageLease(ctx.redis, ctx.settings.key_prefix, "support-bot", ttl_s=30) as token:
        assert token is not None
        report = reconcile(ctx, time.time())

    assert report.lineages_nudged == ["default"]  # the other one's running job delivers anyway
    assert scheduler.batches == [("default", 0.0)]
