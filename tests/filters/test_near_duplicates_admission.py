"""Admission turns a near-duplicate of a pending or completed request into a ``duplicate``."""

from __future__ import annotations

import pytest
import redis

from adapters_store import AdapterStore
from forgetd.ledger import NewRequest, RequestState, open_ledger
from forgetd.payload import DeletionPayload
from forgetd.pipeline.admission import admit_request
from forgetd.pipeline.context import PipelineContext
from forgetd.settings import Settings
from tests.pipeline.recording import RecordingScheduler

S = RequestState
# Long enough that one changed word leaves most shingles (about 0.88 Jaccard, threshold 0.7).
TEXT = ("Mira Solberg was born in Bergen in 1961, works as a potter in the old harbour and keeps a ferret "
        "named Pim in her flat on Storgata. On Sundays she sails a small wooden boat around the islands "
        "with her brother Ivo, who repairs clocks and sings in the cathedral choir.")


@pytest.fixture
def ctx(settings: Settings, redis_client: redis.Redis) -> PipelineContext:
    return PipelineContext(settings, redis_client, open_ledger(settings, redis_client),
                           AdapterStore(settings.adapters_dir), RecordingScheduler())


def submit(ctx: PipelineContext, text: str) -> str:
    record, _ = ctx.ledger.create(NewRequest("t", "default", "pii", DeletionPayload(texts=[text])))
    return record.id


def test_a_one_word_edit_of_a_queued_request_is_a_duplicate_of_it(ctx: PipelineContext) -> None:
    first = submit(ctx, TEXT)
    assert admit_request(ctx, first) is S.QUEUED
    second = submit(ctx, TEXT.replace("potter", "painter"))
    assert admit_request(ctx, second) is S.DUPLICATE
    assert ctx.ledger.get(second).receipt["duplicate_of"] == [first]
    # its own texts' exact claims went back: the same edit, asked again, is judged afresh (and still a duplicate)
    assert admit_request(ctx, submit(ctx, TEXT.replace("potter", "painter"))) is S.DUPLICATE


def test_an_unrelated_request_is_queued(ctx: PipelineContext) -> None:
    admit_request(ctx, submit(ctx, TEXT))
    other = submit(ctx, "Ivo Brandt repairs clocks in Krakow and plays the cello in a quartet on Sundays.")
    assert admit_request(ctx, other) is S.QUEUED


def test_a_request_given_up_is_no_one_to_duplicate(ctx: PipelineContext) -> None:
    first = submit(ctx, TEXT)
    admit_request(ctx, first)
    for state in (S.UNLEARNING, S.VERIFYING, S.NEEDS_REVIEW):
        ctx.ledger.transition(first, state)
    assert admit_request(ctx, submit(ctx, TEXT.replace("potter", "painter"))) is S.QUEUED
