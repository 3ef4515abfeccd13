"""The lineage lease (one writer, growing fencing tokens) and the lineage queue, on a real Redis."""

from __future__ import annotations

import time

import redis

from forgetd.pipeline.lineage_queue import LineageQueue
from forgetd.pipeline.locks import LineageLease, lease_key


def test_one_writer_per_lineage_and_tokens_only_grow(redis_client: redis.Redis, key_prefix: str) -> None:
    first = LineageLease(redis_client, key_prefix, "default")
    second = LineageLease(redis_client, key_prefix, "default")
    other_lineage = LineageLease(redis_client, key_prefix, "other")

    with first as token:
        assert token is not None
        with second as refused, other_lineage as independent:
            assert refused is None
            assert independent is not None
    with second as later:
        assert later is not None and later > token


def test_a_lease_is_renewed_while_held_and_lost_when_expired(redis_client: redis.Redis, key_prefix: str) -> None:
    lease = LineageLease(redis_client, key_prefix, "default", ttl_s=0.3)
    with lease:
        time.sleep(0.8)  # longer than the TTL: only renewal keeps it
        assert lease.still_held()
        redis_client.delete(lease_key(key_prefix, "default"))  # as if it expired under a paused process
        assert not lease.still_held()


def test_claim_takes_leftovers_first_then_the_oldest(redis_client: redis.Redis, key_prefix: str) -> None:
    queue = LineageQueue(redis_client, key_prefix, "default")
    for i, request_id in enumerate(["a", "b", "c", "d"]):
        queue.push(request_id, since=100.0 + i)

    assert queue.claim(2) == ["a", "b"]
    # A job died holding a and b; the next claim resumes them before taking more.
    assert queue.claim(3) == ["a", "b", "c"]
    queue.finish(["a", "b"])
    queue.hand_back({"c": 102.0})
    assert queue.inflight() == []
    assert queue.claim(5) == ["c", "d"]


def test_push_is_idempotent(redis_client: redis.Redis, key_prefix: str) -> None:
    queue = LineageQueue(redis_client, key_prefix, "default")

    assert queue.push("a", since=1.0) == 1
    assert queue.push("a", since=2.0) == 1
    age = queue.oldest_age_s()
    assert age is not None and age > 1000
