"""The unlearning job on the tiny model and a real Redis: publish, redelivery, stale writers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from transformers import AutoTokenizer

from adapters_store import AdapterStore, Manifest
from forgetd.ledger import NewRequest, RequestState, open_ledger
from forgetd.models.tiny import default_tiny_people, fact_probes
from forgetd.payload import DeletionPayload
from forgetd.pipeline.admission import admit_request
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.job import FORGOTTEN_SUBJECTS, forgotten_by, run_lineage_job
from forgetd.pipeline.locks import LineageLease, lease_key
from forgetd.settings import Settings
from forgetd.unlearning import ForgottenSubjects
from tests.pipeline.recording import RecordingScheduler

pytestmark = pytest.mark.slow
S = RequestState


class AnnouncerCrash(Exception):
    """Stands for the worker process dying between publish and completion."""


@pytest.fixture
def ctx(settings: Settings, redis_client: redis.Redis, tiny_model_dir: Path) -> PipelineContext:
    settings = settings.model_copy(update={"model": str(tiny_model_dir)})
    return PipelineContext(settings, redis_client, open_ledger(settings, redis_client),
                           AdapterStore(settings.adapters_dir), RecordingScheduler())


def _queue_person(ctx: PipelineContext, index: int) -> str:
    people = default_tiny_people()
    person = people[index]
    payload = DeletionPayload(texts=person.statements, probes=fact_probes([person]),
                              neighbours=fact_probes([p for p in people if p is not person]))
    record, _ = ctx.ledger.create(NewRequest("t", "default", "pii", payload))
    assert admit_request(ctx, record.id) is S.QUEUED
    return record.id


def test_a_job_publishes_one_version_and_completes_with_a_receipt(ctx: PipelineContext) -> None:
    request_id = _queue_person(ctx, 0)

    report = run_lineage_job(ctx, "default")

    assert report.status == "published" and report.version == 1
    record = ctx.ledger.get(request_id)
    assert record.state is S.COMPLETED and record.attempts == 1
    assert record.receipt is not None
    assert record.receipt["adapter_version"] == 1 and record.receipt["served_name"] == "default-v1"
    metrics = record.receipt["metrics"]
    # Forgotten as a stranger is: at most what a model that never saw the person would guess, plus a margin.
    assert metrics["forget_recall_after"] <= metrics["forget_recall_limit"] < metrics["forget_recall_before"]
    # The receipt carries the verification's extraction strength and int8 quantisation check too.
    assert {"forget_extraction_after", "forget_recall_int8_after", "quant_recovery"} <= record.receipt["metrics"].keys()
    assert ctx.store.manifest("default", 1).request_ids == (request_id,)
    assert ctx.queue("default").inflight() == []


def test_each_version_records_whom_its_lineage_forgot_as_keyed_digests(ctx: PipelineContext) -> None:
    _queue_person(ctx, 0)
    assert run_lineage_job(ctx, "default").status == "published"
    _queue_person(ctx, 1)
    assert run_lineage_job(ctx, "default").status == "published"

    tokenizer = AutoTokenizer.from_pretrained(ctx.settings.model)
    first, second = (ForgottenSubjects.from_record(ctx.ledger.fingerprinter,
                                                   ctx.store.manifest("default", version).extra[FORGOTTEN_SUBJECTS])
                     for version in (1, 2))
    assert first is not None and second is not None
    assert len(first) < len(second)  # the parent's, and one person more
    people = default_tiny_people()

    def asked_about(index: int) -> list[int]:
        return tokenizer(" " + people[index].name, add_special_tokens=False)["input_ids"]

    assert first.names_anyone_in(asked_about(0)) and not first.names_anyone_in(asked_about(1))
    assert second.names_anyone_in(asked_about(0)) and second.names_anyone_in(asked_about(1))
    record = json.dumps(ctx.store.manifest("default", 2).extra[FORGOTTEN_SUBJECTS])
    assert not any(word in record for person in people for word in person.name.split())  # digests, never a name


def test_a_parent_without_the_record_leaves_whom_the_lineage_forgot_unknown(ctx: PipelineContext) -> None:
    def parent(extra: dict[str, Any]) -> Manifest:
        return Manifest("default", 1, None, "tiny", "fit", ("r",), {}, {"adapter_config.json": "0" * 64,
                        "adapter_model.safetensors": "0" * 64}, "2026-01-01T00:00:00+00:00", extra=extra)

    nobody = forgotten_by(ctx, None)  # a new lineage has forgotten nobody
    assert nobody is not None and len(nobody) == 0
    assert forgotten_by(ctx, parent({})) is None  # published by a forgetd that kept no record
    known = forgotten_by(ctx, parent({FORGOTTEN_SUBJECTS: nobody.adding([(1, 2)]).to_record()}))
    assert known is not None and known.names_anyone_in((1, 2))


def test_a_job_redelivered_after_publish_completes_without_a_second_version(
        ctx: PipelineContext, monkeypatch: pytest.MonkeyPatch) -> None:
    request_id = _queue_person(ctx, 1)

    def crash(lineage: str, version: int) -> None:
        raise AnnouncerCrash

    monkeypatch.setattr(ctx, "announce", crash)
    with pytest.raises(AnnouncerCrash):
        run_lineage_job(ctx, "default")
    assert ctx.ledger.get(request_id).state is S.PUBLISHED
    monkeypatch.undo()
    announced: list[int] = []
    monkeypatch.setattr(ctx, "announce", lambda lineage, version: announced.append(version))

    report = run_lineage_job(ctx, "default")

    assert ctx.ledger.get(request_id).state is S.COMPLETED
    assert [m.version for m in ctx.store.versions("default")] == [1]
    assert announced == [1]
    assert report.status == "empty"


def test_a_writer_whose_lease_was_taken_over_cannot_publish(ctx: PipelineContext,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    request_id = _queue_person(ctx, 2)
    stale_publish = ctx.store.publish
    tokens: list[int] = []

    def newer_writer_publishes_first(lineage: str, source_dir: Path, **fields: Any) -> object:
        # This writer was paused past its lease; another took the lease (a newer token) and
        # published the same batch first.
        ctx.redis.delete(lease_key(ctx.settings.key_prefix, lineage))
        with LineageLease(ctx.redis, ctx.settings.key_prefix, lineage) as newer:
            assert newer is not None
            tokens.extend([fields["fencing_token"], newer])
            AdapterStore(ctx.store.root).publish(lineage, source_dir, **{**fields, "fencing_token": newer})
        return stale_publish(lineage, source_dir, **fields)

    monkeypatch.setattr(ctx.store, "publish", newer_writer_publishes_first)

    report = run_lineage_job(ctx, "default")

    assert tokens[0] < tokens[1]
    assert report.status == "lease_lost"
    assert [m.fencing_token for m in ctx.store.versions("default")] == [tokens[1]]
    assert ctx.ledger.get(request_id).state is S.QUEUED
    assert ctx.queue("default").depth() == 1 and ctx.queue("default").inflight() == []

    monkeypatch.undo()
    assert run_lineage_job(ctx, "default").status == "empty"
    assert ctx.ledger.get(request_id).state is S.COMPLETED
    assert len(ctx.store.versions("default")) == 1
