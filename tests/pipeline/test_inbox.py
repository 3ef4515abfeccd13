"""The admission inbox on a real Redis: one message admits what is received, and none is stranded."""

from __future__ import annotations

import pytest
import redis

from forgetd.ledger import NewRequest, RequestState
from forgetd.payload import DeletionPayload
from forgetd.pipeline import inbox as inbox_module
from forgetd.pipeline.admission import admit_request
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.inbox import AdmissionInbox
from tests.pipeline.recording import RecordingScheduler

S = RequestState


@pytest.fixture
def inbox(ctx: PipelineContext, scheduler: RecordingScheduler) -> AdmissionInbox:
    return AdmissionInbox(ctx.ledger, scheduler)


def _new(i: int) -> NewRequest:
    return NewRequest("t", "default", "pii", DeletionPayload(texts=[f"Person number {i} lives in Bergen."]))


def _drain(inbox: AdmissionInbox, ctx: PipelineContext) -> int:
    return inbox.drain(lambda request_id: admit_request(ctx, request_id))


def test_one_message_admits_every_request_received_before_it_runs(
        inbox: AdmissionInbox, ctx: PipelineContext, scheduler: RecordingScheduler) -> None:
    ids = [inbox.submit(_new(i))[0].id for i in range(5)]
    assert scheduler.admit_pending_calls == 1

    assert _drain(inbox, ctx) == 5

    assert all(ctx.ledger.get(i).state is S.QUEUED for i in ids)
    assert ctx.ledger.ids_in_state(S.RECEIVED) == set()


def test_a_request_stored_after_the_drain_started_sends_a_new_message(
        inbox: AdmissionInbox, ctx: PipelineContext, scheduler: RecordingScheduler) -> None:
    inbox.submit(_new(0))
    late: list[str] = []

    def admit_and_meanwhile_receive_another(request_id: str) -> None:
        admit_request(ctx, request_id)
        if not late:
            late.append(inbox.submit(_new(1))[0].id)  # arrives while the drain is running

    inbox.drain(admit_and_meanwhile_receive_another)

    assert scheduler.admit_pending_calls == 2  # the late request asked again
    assert _drain(inbox, ctx) == 1 and ctx.ledger.get(late[0]).state is S.QUEUED


def test_a_lost_message_delays_admission_only_until_the_flag_expires(
        inbox: AdmissionInbox, ctx: PipelineContext, scheduler: RecordingScheduler) -> None:
    inbox.submit(_new(0))  # its message is lost: no drain ever runs for it
    assert 0 < ctx.redis.pttl(ctx.ledger.admission_flag_key) <= inbox_module.PENDING_FLAG_TTL_MS
    ctx.redis.delete(ctx.ledger.admission_flag_key)  # as when its TTL runs out

    inbox.submit(_new(1))

    assert scheduler.admit_pending_calls == 2
    assert _drain(inbox, ctx) == 2


class BrokerDown(RecordingScheduler):
    def admit_pending(self) -> None:
        raise redis.ConnectionError("broker unreachable")


def test_a_broker_failure_keeps_the_request_and_lets_the_next_one_try_again(ctx: PipelineContext) -> None:
    down = AdmissionInbox(ctx.ledger, BrokerDown())
    record, created = down.submit(_new(0))

    assert created and ctx.ledger.get(record.id).state is S.RECEIVED
    assert not ctx.redis.exists(ctx.ledger.admission_flag_key)  # the next request sends at once


def test_a_full_drain_hands_the_rest_to_a_new_message(
        inbox: AdmissionInbox, ctx: PipelineContext, scheduler: RecordingScheduler,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox_module, "DRAIN_BATCH", 3)
    for i in range(5):
        inbox.submit(_new(i))

    assert _drain(inbox, ctx) == 3
    assert scheduler.admit_pending_calls == 2
    assert _drain(inbox, ctx) == 2
    assert scheduler.admit_pending_calls == 2


def test_one_failing_request_does_not_hold_up_the_others(inbox: AdmissionInbox, ctx: PipelineContext) -> None:
    ids = [inbox.submit(_new(i))[0].id for i in range(3)]
    broken = ids[1]

    def admit(request_id: str) -> None:
        if request_id == broken:
            raise ValueError("a request this worker cannot admit")
        admit_request(ctx, request_id)

    assert inbox.drain(admit) == 3
    assert {i for i in ids if ctx.ledger.get(i).state is S.QUEUED} == set(ids) - {broken}
