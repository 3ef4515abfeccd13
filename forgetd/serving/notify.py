"""Telling serving processes that a lineage has a new current version (Redis pub/sub).

A message is a hint, not the truth: it carries a lineage and a version number only, and the
subscriber answers it by re-reading the store's pointer. Messages can be lost (pub/sub keeps nothing
for a disconnected subscriber), so the subscriber also re-syncs from the store every few seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Protocol

import redis

logger = logging.getLogger(__name__)

DEFAULT_RESYNC_INTERVAL_S = 5.0
_POLL_S = 0.5  # how long one wait for a message blocks: bounds stop() latency
_RECONNECT_BACKOFF_S = 2.0


class Syncable(Protocol):
    """What the subscriber drives; :class:`~forgetd.serving.engine.EmbeddedEngine` is one."""

    def sync_from_store(self) -> None: ...

    def sync_lineage(self, lineage: str, *, started_at: float | None = None) -> None: ...


def adapters_channel(key_prefix: str) -> str:
    """The pub/sub channel announcing new adapter versions for one deployment."""
    return f"{key_prefix}:adapters"


def announce_version(redis_client: redis.Redis, key_prefix: str, lineage: str, version: int) -> None:
    """Tell every subscribed serving process that ``lineage``'s current version is now ``version``."""
    message = json.dumps({"lineage": lineage, "version": version})
    receivers = redis_client.publish(adapters_channel(key_prefix), message)
    logger.info("announced %s v%d to %s subscriber(s)", lineage, version, receivers)


def parse_announcement(data: Any) -> tuple[str, int] | None:
    """``(lineage, version)`` from a message body, or ``None`` when it is not one of ours."""
    try:
        body = json.loads(data)
        lineage, version = body["lineage"], body["version"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(lineage, str) or not isinstance(version, int) or isinstance(version, bool):
        return None
    return lineage, version


class AdapterSubscriber:
    """Keeps an engine current: syncs on each announcement and, apart, every ``resync_interval_s``.

    Two daemon threads: a listener for announcements, and the periodic re-sync, which runs on its own
    so that a Redis outage (whose client retries can block for seconds) never delays it.
    """

    def __init__(
        self,
        engine: Syncable,
        redis_client: redis.Redis,
        key_prefix: str,
        *,
        resync_interval_s: float = DEFAULT_RESYNC_INTERVAL_S,
    ) -> None:
        if resync_interval_s <= 0:
            raise ValueError(f"resync_interval_s must be > 0, got {resync_interval_s}")
        self._engine = engine
        self._redis = redis_client
        self._channel = adapters_channel(key_prefix)
        self._resync_interval_s = resync_interval_s
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._threads = [
            threading.Thread(target=self._listen, name="forgetd-adapter-listener", daemon=True),
            threading.Thread(target=self._resync_periodically, name="forgetd-adapter-resync", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout_s)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Whether the subscription is live within ``timeout_s`` (announcements before it are missed)."""
        return self._subscribed.wait(timeout_s)

    def _resync_periodically(self) -> None:
        while not self._stop.wait(self._resync_interval_s):
            self._sync(None, None)

    def _listen(self) -> None:
        pubsub: Any = None
        while not self._stop.is_set():
            if pubsub is None:
                pubsub = self._subscribe()
            if pubsub is not None:
                pubsub = self._poll(pubsub)
            else:
                self._stop.wait(_RECONNECT_BACKOFF_S)
        if pubsub is not None:
            pubsub.close()

    def _subscribe(self) -> Any:
        """A subscription, or ``None`` while Redis is unreachable; live once the server confirms it."""
        try:
            pubsub = self._redis.pubsub()
            pubsub.subscribe(self._channel)
        except redis.RedisError as e:
            logger.warning("adapter notifications unavailable (%s); relying on periodic re-sync", e)
            return None
        return pubsub

    def _poll(self, pubsub: Any) -> Any:
        """Wait briefly for one message and act on it; ``None`` when the connection is lost."""
        try:
            message = pubsub.get_message(timeout=_POLL_S)
        except redis.RedisError as e:
            logger.warning("adapter notification connection lost (%s); reconnecting", e)
            self._subscribed.clear()
            pubsub.close()
            return None
        if message is None:
            return pubsub
        if message["type"] == "subscribe":
            # From here on no announcement is missed; catch up on those made while we were away.
            self._subscribed.set()
            self._sync(None, None)
        elif message["type"] == "message":
            self._on_message(message["data"])
        return pubsub

    def _on_message(self, data: Any) -> None:
        seen = time.monotonic()
        parsed = parse_announcement(data)
        if parsed is None:
            logger.warning("ignored a malformed adapter announcement on %s", self._channel)
            return
        lineage, version = parsed
        logger.info("announcement: %s v%d", lineage, version)
        self._sync(lineage, seen)

    def _sync(self, lineage: str | None, seen: float | None) -> None:
        # This thread is the safety net itself: nothing a sync raises may end it.
        try:
            if lineage is None:
                self._engine.sync_from_store()
            else:
                self._engine.sync_lineage(lineage, started_at=seen)
        except Exception:
            logger.exception("adapter sync failed (lineage %s)", lineage)
