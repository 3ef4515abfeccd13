"""One writer per lineage: a Redis lease with a fencing token.

The lease (``SET NX PX``) keeps two workers from training the same lineage at once; it is renewed
while the job runs. A lease can still expire under a paused process (GC, swap, a stopped container),
so every lease also carries a fencing token, a counter that only grows: the adapter store refuses a
publish whose token is lower than one it has already accepted (Kleppmann, "How to do distributed
locking", 2016).
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

import redis

logger = logging.getLogger(__name__)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def lease_key(key_prefix: str, lineage: str) -> str:
    return f"{key_prefix}:lease:{lineage}"


def lease_is_held(client: redis.Redis, key_prefix: str, lineage: str) -> bool:
    """Whether any writer holds ``lineage``'s lease now (for observers such as the reconciler)."""
    return bool(client.exists(lease_key(key_prefix, lineage)))


class LineageLease:
    """``with LineageLease(...) as token:`` holds the lineage's lease; token is None if it is taken."""

    def __init__(self, client: redis.Redis, key_prefix: str, lineage: str, ttl_s: float = 60.0) -> None:
        self._redis = client
        self._key = lease_key(key_prefix, lineage)
        self._fence_key = f"{key_prefix}:fence:{lineage}"
        self._ttl_ms = int(ttl_s * 1000)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._token: int | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def token(self) -> int | None:
        return self._token

    def __enter__(self) -> int | None:
        token = int(self._redis.incr(self._fence_key))
        if not self._redis.set(self._key, token, nx=True, px=self._ttl_ms):
            return None
        self._token = token
        self._renewer = threading.Thread(target=self._keep_alive, name=f"lease-{self._key}", daemon=True)
        self._renewer.start()
        return token

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._token is None:
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        self._release(keys=[self._key], args=[self._token])
        self._token = None

    def still_held(self) -> bool:
        value = self._redis.get(self._key)
        return value is not None and self._token is not None and int(value) == self._token

    def _keep_alive(self) -> None:
        while not self._stop.wait(self._ttl_ms / 3000):
            try:
                if not self._renew(keys=[self._key], args=[self._token, self._ttl_ms]):
                    logger.warning("lease %s lost (token %s); the store will refuse its publish",
                               self._key, self._token)
                    return
            except redis.RedisError:
                logger.warning("lease %s: renewal failed, retrying", self._key, exc_info=True)
