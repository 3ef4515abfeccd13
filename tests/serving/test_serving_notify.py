from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from serving_helpers import LINEAGE, Publish

from forgetd.serving.engine import EmbeddedEngine
from forgetd.serving.notify import AdapterSubscriber, adapters_channel, announce_version, parse_announcement


@pytest.fixture
def subscriber_for(
    redis_client: redis.Redis, key_prefix: str
) -> Iterator[Callable[[EmbeddedEngine, float], AdapterSubscriber]]:
    started: list[AdapterSubscriber] = []

    def start(engine: EmbeddedEngine, resync_interval_s: float) -> AdapterSubscriber:
        subscriber = AdapterSubscriber(engine, redis_client, key_prefix, resync_interval_s=resync_interval_s)
        subscriber.start()
        started.append(subscriber)
        assert subscriber.wait_subscribed(5.0)
        return subscriber

    yield start
    for subscriber in started:
        subscriber.stop()


def _wait_for_version(engine: EmbeddedEngine, version: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if engine.served_version(LINEAGE) == version:
            return True
        time.sleep(0.02)
    return False


def test_announcement_swaps_running_subscriber(
    engine: EmbeddedEngine, publish: Publish, redis_client: redis.Redis, key_prefix: str, subscriber_for
) -> None:
    # A long re-sync interval: the swap must come from the announcement, not the safety net.
    subscriber_for(engine, 600.0)
    publish(1)
    announce_version(redis_client, key_prefix, LINEAGE, 1)
    assert _wait_for_version(engine, 1, 2.0)


def test_periodic_resync_catches_a_missed_announcement(
    engine: EmbeddedEngine, publish: Publish, subscriber_for
) -> None:
    subscriber_for(engine, 0.2)
    publish(1)
    assert _wait_for_version(engine, 1, 3.0)


def test_resyncs_while_redis_is_unreachable(engine: EmbeddedEngine, publish: Publish) -> None:
    # No client retries: they would only make stop() wait for the listener thread.
    unreachable = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    subscriber = AdapterSubscriber(engine, unreachable, "test", resync_interval_s=0.2)
    subscriber.start()
    try:
        publish(1)
        assert _wait_for_version(engine, 1, 3.0)
        assert not subscriber.wait_subscribed(0)
    finally:
        subscriber.stop()


def test_reconnects_after_losing_its_connection(
    engine: EmbeddedEngine, publish: Publish, redis_url: str, key_prefix: str
) -> None:
    name = f"{key_prefix}-subscriber"
    client = redis.Redis.from_url(redis_url, client_name=name)
    subscriber = AdapterSubscriber(engine, client, key_prefix, resync_interval_s=600.0)
    subscriber.start()
    try:
        assert subscriber.wait_subscribed(5.0)
        publish(1)  # not announced: only the catch-up sync after re-subscribing can find it
        [ours] = [c for c in client.client_list() if c["name"] == name and c["cmd"] != "client|list"]
        client.client_kill_filter(_id=ours["id"])
        assert _wait_for_version(engine, 1, 5.0)
    finally:
        subscriber.stop()
        client.close()


def test_malformed_announcement_is_ignored(
    engine: EmbeddedEngine, publish: Publish, redis_client: redis.Redis, key_prefix: str, subscriber_for
) -> None:
    subscriber = subscriber_for(engine, 600.0)
    redis_client.publish(adapters_channel(key_prefix), b"not json")
    publish(1)
    announce_version(redis_client, key_prefix, LINEAGE, 1)
    assert _wait_for_version(engine, 1, 2.0)  # the thread survived the bad message
    subscriber.stop()


def test_announce_version_message(redis_client: redis.Redis, key_prefix: str) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(adapters_channel(key_prefix))
    announce_version(redis_client, key_prefix, LINEAGE, 3)
    message = None
    deadline = time.monotonic() + 2.0
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
    pubsub.close()
    assert message is not None
    assert message["channel"] == f"{key_prefix}:adapters".encode()
    assert json.loads(message["data"]) == {"lineage": LINEAGE, "version": 3}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"lineage": "a", "version": 2}', ("a", 2)),
        (b'{"lineage": "a", "version": true}', None),
        (b'{"lineage": "a", "version": "2"}', None),
        (b'{"lineage": 1, "version": 2}', None),
        (b'{"version": 2}', None),
        (b"[1, 2]", None),
        (b"\xff", None),
        (b"not json", None),
    ],
)
def test_parse_announcement(data: bytes, expected: tuple[str, int] | None) -> None:
    assert parse_announcement(data) == expected


def test_resync_interval_must_be_positive(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError):
        AdapterSubscriber(EngineStub(), redis_client, "test", resync_interval_s=0)


class EngineStub:
    def sync_from_store(self) -> None:
        pass

    def sync_lineage(self, lineage: str, *, started_at: float | None = None) -> None:
        pass
