"""A lineage's queue of admitted requests, and the set of those a job has claimed.

``p:queue:<lineage>`` is a sorted set (score: time queued), so the batcher sees the oldest request's
age in O(1). ``p:inflight:<lineage>`` holds the ids of the batch being worked on; the next holder of the
lineage lease finds there whatever a crashed job left behind. ``p:deferred:<lineage>`` (score: when it
may run again) holds requests waiting out the back-off after a failed attempt, with their arrival times
in ``p:arrivals:<lineage>``; a claim first moves the due ones back into the queue.
"""

from __future__ import annotations

import time

import redis

_CLAIM = """
-- KEYS: queue, inflight, deferred, arrivals. ARGV: max batch size, now.
-- Moves deferred ids that are due back into the queue, then the oldest ids from queue to inflight.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])) do
  redis.call('ZADD', KEYS[1], 'NX', redis.call('HGET', KEYS[4], id) or ARGV[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
end
if tonumber(ARGV[1]) <= 0 then return {} end
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
        self._deferred = f"{key_prefix}:deferred:{lineage}"
        self._arrivals = f"{key_prefix}:arrivals:{lineage}"
        self._claim = client.register_script(_CLAIM)

    def push(self, request_id: str, since: float) -> int:
        """Add (idempotently) and return the queue's length; ``since`` is when the request arrived, so
        the queue's age measures the wait the requester sees."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._queue, {request_id: since}, nx=True)
            pipe.zcard(self._queue)
            _, length = pipe.execute()
        return int(length)

    def defer(self, request_id: str, since: float, until: float) -> None:
        """Queue the request again, but not before ``until`` (back-off after a failed attempt)."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._arrivals, request_id, repr(since))
            pipe.zadd(self._deferred, {request_id: until})
            pipe.execute()

    def contains(self, request_id: str) -> bool:
        """Whether the request waits here: ready in the queue or deferred."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zscore(self._queue, request_id)
            pipe.zscore(self._deferred, request_id)
            return any(score is not None for score in pipe.execute())

    def depth(self) -> int:
        """Requests ready to run (deferred ones are not)."""
        return int(self._redis.zcard(self._queue))

    def oldest_age_s(self) -> float | None:
        oldest = self._redis.zrange(self._queue, 0, 0, withscores=True)
        return time.time() - oldest[0][1] if oldest else None

    def inflight(self) -> list[str]:
        return sorted(member.decode() for member in self._redis.smembers(self._inflight))

    def claim(self, max_size: int) -> list[str]:
        """The batch to work on: what a crashed job left in flight, topped up from the queue."""
        leftover = self.inflight()
        keys = [self._queue, self._inflight, self._deferred, self._arrivals]
        fresh = self._claim(keys=keys, args=[max_size - len(leftover), repr(time.time())])
        return leftover + [request_id.decode() for request_id in fresh]

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
