"""The ledger on a real Redis: state machine, atomic idempotency, sealed payloads, shredding."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from forgetd.ledger import (
    TERMINAL_STATES,
    Fingerprinter,
    IdempotencyConflictError,
    IllegalTransitionError,
    Ledger,
    NewRequest,
    PayloadCipher,
    PayloadUnavailableError,
    RequestNotFoundError,
    RequestState,
)
from forgetd.ledger.states import TRANSITIONS
from forgetd.payload import DeletionPayload, Probe
from tests.redis_scan import every_value

S = RequestState
SECRET = "Zorba Quillfeather lives at 12 Elm Row"


@pytest.fixture
def ledger(redis_client: redis.Redis, key_prefix: str) -> Ledger:
    return Ledger(redis_client, key_prefix, PayloadCipher(os.urandom(32)), Fingerprinter(os.urandom(32)))


def _new(text: str = SECRET, key: str | None = None) -> NewRequest:
    payload = DeletionPayload(texts=[text], probes=[Probe(prompt="Zorba lives at", completion="12 Elm Row")])
    return NewRequest(tenant="t1", lineage="default", kind="pii", payload=payload, idempotency_key=key)


def test_payload_is_sealed_at_rest_and_opens_for_its_own_id(ledger: Ledger, redis_client: redis.Redis,
                                                             key_prefix: str) -> None:
    record, _ = ledger.create(_new())

    for _, value in every_value(redis_client, f"{key_prefix}*"):
        assert b"Quillfeather" not in value and b"Elm Row" not in value
    assert ledger.payload(record.id).texts == [SECRET]


def test_shredding_makes_the_payload_unreadable_for_good(ledger: Ledger) -> None:
    record, _ = ledger.create(_new())

    assert ledger.shred(record.id)

    with pytest.raises(PayloadUnavailableError) as error:
        ledger.payload(record.id)
    assert SECRET not in str(error.value)
    shredded = ledger.get(record.id)
    assert shredded.shredded_at is not None and not shredded.payload_present


def test_ciphertext_moved_to_another_record_does_not_open(ledger: Ledger, redis_client: redis.Redis,
                                                          key_prefix: str) -> None:
    first, _ = ledger.create(_new())
    second, _ = ledger.create(_new("Another person entirely, Ivo Brandt"))
    stolen = redis_client.hmget(f"{key_prefix}:req:{first.id}", ["wrapped_key", "ciphertext"])
    redis_client.hset(f"{key_prefix}:req:{second.id}", mapping=dict(zip(["wrapped_key", "ciphertext"], stolen,
                                                                         strict=True)))

    with pytest.raises(PayloadUnavailableError):
        ledger.payload(second.id)


def test_concurrent_creates_with_one_idempotency_key_make_one_request(ledger: Ledger) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ledger.create(_new(key="k")), range(16)))

    assert len({record.id for record, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert ledger.counts_by_state()[S.RECEIVED] == 1


def test_idempotency_key_with_another_body_conflicts(ledger: Ledger) -> None:
    record, _ = ledger.create(_new(key="k"))

    with pytest.raises(IdempotencyConflictError) as error:
        ledger.create(_new("A different text to forget", key="k"))
    assert error.value.request_id == record.id


def test_happy_path_walks_the_state_machine_and_audits_each_step(ledger: Ledger) -> None:
    record, _ = ledger.create(_new())
    path = [S.QUEUED, S.UNLEARNING, S.VERIFYING, S.PUBLISHED, S.COMPLETED]

    for state in path:
        ledger.transition(record.id, state, count_attempt=state is S.UNLEARNING)

    final = ledger.get(record.id)
    assert final.state is S.COMPLETED and final.attempts == 1
    assert [entry["to"] for entry in ledger.audit_trail(record.id)] == ["received", *path]
    counts = ledger.counts_by_state()
    assert counts[S.COMPLETED] == 1 and sum(counts.values()) == 1


ILLEGAL = [(src, dst) for src in S for dst in S if dst not in TRANSITIONS[src]]


@pytest.mark.parametrize(("source", "target"), ILLEGAL[:: max(1, len(ILLEGAL) // 40)])
def test_illegal_transitions_are_refused_and_change_nothing(ledger: Ledger, redis_client: redis.Redis,
                                                             key_prefix: str, source: RequestState,
                                                             target: RequestState) -> None:
    record, _ = ledger.create(_new())
    redis_client.hset(f"{key_prefix}:req:{record.id}", "state", source.value)

    with pytest.raises(IllegalTransitionError):
        ledger.transition(record.id, target)
    assert ledger.get(record.id).state is source


def test_sources_narrow_a_transition_so_redelivery_cannot_move_a_request_twice(ledger: Ledger) -> None:
    record, _ = ledger.create(_new())
    ledger.transition(record.id, S.QUEUED, sources=[S.RECEIVED])

    with pytest.raises(IllegalTransitionError):
        ledger.transition(record.id, S.QUEUED, sources=[S.RECEIVED])


def test_terminal_states_have_no_automatic_way_out() -> None:
    for state in TERMINAL_STATES:
        assert TRANSITIONS[state] <= {S.QUEUED}, state


def test_unknown_request(ledger: Ledger) -> None:
    with pytest.raises(RequestNotFoundError):
        ledger.get("0" * 32)
    with pytest.raises(RequestNotFoundError):
        ledger.transition("0" * 32, S.QUEUED)


def test_payload_repr_never_shows_text() -> None:
    payload = DeletionPayload(texts=[SECRET])

    assert SECRET not in repr(payload) and SECRET not in str(payload)
    assert "Quillfeather" not in repr(Probe(prompt="Zorba Quillfeather", completion="x"))


def test_shredding_records_when_in_the_receipt_once(ledger: Ledger) -> None:
    record, _ = ledger.create(_new())
    for state in (S.QUEUED, S.UNLEARNING, S.VERIFYING, S.PUBLISHED):
        ledger.transition(record.id, state)
    ledger.transition(record.id, S.COMPLETED, receipt={"request_id": record.id, "adapter_version": 1})

    assert ledger.shred(record.id)
    first = ledger.get(record.id)
    assert not ledger.shred(record.id)

    assert first.receipt is not None and "payload_destroyed_at" in first.receipt
    assert first.receipt["adapter_version"] == 1
    assert ledger.get(record.id).receipt == first.receipt


def test_shredding_an_unknown_request_creates_nothing(ledger: Ledger, redis_client: redis.Redis,
                                                      key_prefix: str) -> None:
    assert not ledger.shred("0" * 32)
    assert not redis_client.exists(f"{key_prefix}:req:{'0' * 32}")


def test_a_master_key_rotation_rewraps_data_keys_and_retires_the_old_key(redis_client: redis.Redis,
                                                                          key_prefix: str) -> None:
    old_key, new_key, fingerprints = os.urandom(32), os.urandom(32), Fingerprinter(os.urandom(32))
    before = Ledger(redis_client, key_prefix, PayloadCipher(old_key), fingerprints)
    kept, _ = before.create(_new())
    shredded, _ = before.create(_new("Another secret that was shredded already"))
    before.shred(shredded.id)

    during = Ledger(redis_client, key_prefix, PayloadCipher(new_key, [old_key]), fingerprints)
    added_during, _ = during.create(_new("A request sealed after the new key arrived"))
    assert during.payload(kept.id).texts == [SECRET]  # old data keys still open while rotating

    report = during.rotate_master_key()
    assert (report.rewrapped, report.already_current, report.unreadable) == (1, 1, [])
    assert during.rotate_master_key().rewrapped == 0  # running it again changes nothing

    after = Ledger(redis_client, key_prefix, PayloadCipher(new_key), fingerprints)
    assert after.payload(kept.id).texts == [SECRET]
    assert after.payload(added_during.id).texts == ["A request sealed after the new key arrived"]
    with pytest.raises(PayloadUnavailableError):
        Ledger(redis_client, key_prefix, PayloadCipher(old_key), fingerprints).payload(kept.id)


def test_a_rotation_reports_data_keys_no_configured_key_opens(redis_client: redis.Redis, key_prefix: str) -> None:
    fingerprints = Fingerprinter(os.urandom(32))
    lost, _ = Ledger(redis_client, key_prefix, PayloadCipher(os.urandom(32)), fingerprints).create(_new())

    report = Ledger(redis_client, key_prefix, PayloadCipher(os.urandom(32)), fingerprints).rotate_master_key()

    assert report.unreadable == [lost.id] and report.rewrapped == 0
