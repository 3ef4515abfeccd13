"""A lineage's queue of admitted requests, and the set of those a job has claimed.

``p:queue:<lineage>`` is a sorted set (score: time queued), so the batcher sees the oldest request's
age in O(1). ``p:inflight:<lineage>`` holds the ids of the batch being worked on; the next holder of the
lineage lease finds there whatever a crashed job left behind.
"""

from __future__ import annotations

import time

import redis

_CLAIM = """
-- KEYS: queue, inflight. ARGV: max batch size. Moves the oldest ids from queue to inflight.
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('SADD', KEYS[2], id)
end
return ids
"""


class LineageQueue:
    def __init__(self, client: redis.Redis, key_prefix: str, lineage: str) -> None:
        self._redis = client
        self._queue = f"{key_prefix}:queue:{lineage}"
        self._inflight = f"{key_prefix}:inflight:{lineage}"
        self._claim = client.register_script(_CLAIM)

    def push(self, request_id: str, since: float) -> int:
        """Add (idempotently) and return the queue's length; ``since`` is when the request arrived, so
        the queue's age measures the wait the requester sees."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._queue, {request_id: since}, nx=True)
            pipe.zcard(self._queue)
            _, length = pipe.execute()
        return int(length)

    def contains(self, request_id: str) -> bool:
        return self._redis.zscore(self._queue, request_id) is not None

    def depth(self) -> int:
        return int(self._redis.zcard(self._queue))

    def oldest_age_s(self) -> float | None:
        oldest = self._redis.zrange(self._queue, 0, 0, withscores=True)
        return time.time() - oldest[0][1] if oldest else None

    def inflight(self) -> list[str]:
        return sorted(member.decode() for member in self._redis.smembers(self._inflight))

    def claim(self, max_size: int) -> list[str]:
        """The batch to work on: what a crashed job left in flight, topped up from the queue."""
        leftover = self.inflight()
        room = max_size - len(leftover)
        fresh = [i.decode() for i in self._claim(keys=[self._queue, self._inflight], args=[room])] if room > 0 else []
        return leftover + fresh

    def finish(self, request_ids: list[str]) -> None:
        if request_ids:
            self._redis.srem(self._inflight, *request_ids)

    def hand_back(self, arrivals: dict[str, float]) -> None:
        """Return claimed ids (id -> arrival time) to the queue (graceful shutdown, lost lease)."""
        if not arrivals:
            return
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._queue, arrivals)
            pipe.srem(self._inflight, *arrivals)
            pipe.execute()
