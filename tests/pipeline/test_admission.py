"""``admit`` on a real Redis: validation, exact duplicates by keyed HMAC, queueing and batch triggers."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from forgetd.ledger import NewRequest, PayloadUnavailableError, RequestState
from forgetd.payload import DeletionPayload, Probe
from forgetd.pipeline.admission import admit_request
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.job import run_lineage_job
from forgetd.pipeline.replay import replay_request
from forgetd.settings import Settings
from tests.pipeline.recording import RecordingScheduler

S = RequestState


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"batch_max_size": 3})


def _submit(ctx: PipelineContext, *texts: str, neighbours: list[Probe] | None = None) -> str:
    payload = DeletionPayload(texts=list(texts), neighbours=neighbours or [])
    record, _ = ctx.ledger.create(NewRequest("t", "default", "pii", payload))
    return record.id


def test_a_valid_request_is_queued_and_starts_the_batch_wait(ctx: PipelineContext,
                                                             scheduler: RecordingScheduler) -> None:
    request_id = _submit(ctx, "Mira Solberg works as a potter.")

    assert admit_request(ctx, request_id) is S.QUEUED

    assert ctx.queue("default").depth() == 1
    assert scheduler.batches == [("default", ctx.settings.batch_max_wait_s)]


def test_a_full_batch_starts_at_once(ctx: PipelineContext, scheduler: RecordingScheduler) -> None:
    for i in range(3):
        admit_request(ctx, _submit(ctx, f"Person number {i} lives in Bergen."))

    assert scheduler.batches[-1] == ("default", 0.0)


def test_redelivered_admit_is_idempotent(ctx: PipelineContext) -> None:
    request_id = _submit(ctx, "Mira Solberg works as a potter.")

    admit_request(ctx, request_id)
    admit_request(ctx, request_id)

    assert ctx.queue("default").depth() == 1
    assert [e["to"] for e in ctx.ledger.audit_trail(request_id)] == ["received", "queued"]


def test_exact_duplicate_after_normalisation_ends_as_duplicate_and_is_shredded(ctx: PipelineContext) -> None:
    first = _submit(ctx, "Mira Solberg works as a potter.")
    admit_request(ctx, first)
    second = _submit(ctx, "  MIRA   solberg works as a potter.")

    assert admit_request(ctx, second) is S.DUPLICATE

    record = ctx.ledger.get(second)
    assert record.receipt is not None and record.receipt["duplicate_of"] == [first]
    with pytest.raises(PayloadUnavailableError):
        ctx.ledger.payload(second)


def test_a_request_with_one_new_text_is_not_a_duplicate(ctx: PipelineContext) -> None:
    admit_request(ctx, _submit(ctx, "Mira Solberg works as a potter."))
    # The new text brings enough word 3-grams of its own (Jaccard 4/15) that the near-duplicate
    # check, whose MinHash estimate varies with the per-test key, stays far below its 0.7 threshold.
    new_text = "Mira Solberg keeps a black cat named Pepper in her flat on Storgata."

    assert admit_request(ctx, _submit(ctx, "Mira Solberg works as a potter.", new_text)) is S.QUEUED


@pytest.mark.parametrize(
    ("texts", "neighbours", "reason"),
    [
        (["short"], [], "text_too_short"),
        (["Mira Solberg works as a potter.", "mira solberg works as a potter."], [], "repeated_text"),
        (["Mira Solberg works as a potter."], [Probe(prompt="Mira Solberg works", completion="as a potter.")],
         "conflicting_probes"),
        (["Mira Solberg works as a potter."], [Probe(prompt="mira  solberg works", completion="AS A potter.")],
         "conflicting_probes"),
    ],
)
def test_invalid_payloads_are_rejected_with_a_reason_that_quotes_nothing(
        ctx: PipelineContext, texts: list[str], neighbours: list[Probe], reason: str) -> None:
    request_id = _submit(ctx, *texts, neighbours=neighbours)

    assert admit_request(ctx, request_id) is S.REJECTED

    record = ctx.ledger.get(request_id)
    assert record.reason is not None and record.reason.startswith(reason)
    assert "potter" not in record.reason and "Mira" not in record.reason
    assert ctx.queue("default").depth() == 0


def test_a_shared_answer_with_another_prompt_is_no_conflict(ctx: PipelineContext) -> None:
    neighbours = [Probe(prompt="Ivo Brandt works", completion="as a potter.")]

    assert admit_request(ctx, _submit(ctx, "Mira Solberg works as a potter.", neighbours=neighbours)) is S.QUEUED


def test_a_dead_lettered_request_gives_its_texts_back_and_takes_them_again_on_replay(ctx: PipelineContext) -> None:
    text = "Mira Solberg works as a potter."
    abandoned = _submit(ctx, text)
    admit_request(ctx, abandoned)
    # No attempts allowed: the job dead-letters the request at once, before any training.
    run_lineage_job(replace(ctx, settings=ctx.settings.model_copy(update={"max_attempts": 0})), "default")
    assert ctx.ledger.get(abandoned).state is S.DEAD_LETTER

    later = _submit(ctx, text)
    assert admit_request(ctx, later) is S.QUEUED  # not a duplicate of a request that will never run

    replay_request(ctx.ledger, ctx.scheduler, abandoned)
    assert ctx.duplicates.claim("default", abandoned, [text]).owners == {later}
    assert ctx.duplicates.release(later) == 1
    assert admit_request(ctx, _submit(ctx, text)) is S.QUEUED


def test_a_failed_attempt_waits_out_its_back_off_before_it_runs_again(
        ctx: PipelineContext, scheduler: RecordingScheduler, tmp_path: Path) -> None:
    request_id = _submit(ctx, "Mira Solberg works as a potter.")
    admit_request(ctx, request_id)
    broken = ctx.settings.model_copy(update={"model": str(tmp_path / "no-such-model"), "retry_backoff_s": 0.5})

    assert run_lineage_job(replace(ctx, settings=broken), "default").status == "failed"

    record, queue = ctx.ledger.get(request_id), ctx.queue("default")
    assert record.state is S.QUEUED and record.attempts == 1
    assert scheduler.batches[-1] == ("default", 0.5)  # the retry is scheduled for when the back-off ends
    assert queue.contains(request_id) and queue.depth() == 0
    assert queue.claim(8) == []  # too early: a job started now finds nothing to run
    time.sleep(0.6)
    assert queue.claim(8) == [request_id]
