"""Requests per minute per tenant: a fixed one-minute window counted in Redis.

Fixed windows let a tenant burst up to twice the limit across a window edge; that is acceptable for
an intake API whose limit protects the queue, and it costs one INCR per request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

WINDOW_S = 60


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int


class RateLimiter:
    def __init__(self, client: redis.Redis, key_prefix: str, per_minute: int) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._per_minute = per_minute

    def hit(self, tenant: str, now: float | None = None) -> RateDecision:
        """Count one request of ``tenant``; refuse it when the window's budget is spent."""
        if self._per_minute <= 0:
            return RateDecision(True, 0)
        now = time.time() if now is None else now
        window = int(now // WINDOW_S)
        key = f"{self._prefix}:rate:{tenant}:{window}"
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_S * 2)
            count, _ = pipe.execute()
        retry_after = max(1, int((window + 1) * WINDOW_S - now))
        return RateDecision(int(count) <= self._per_minute, retry_after)
