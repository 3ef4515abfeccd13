"""Reading every value in a Redis database, whatever its type, to search it for leaked text.

``DUMP`` is no good for that: Redis compresses long strings in its dump format.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis


def _values(client: redis.Redis, key: bytes) -> list[bytes]:
    kind = client.type(key).decode()
    if kind == "string":
        return [client.get(key) or b""]
    if kind == "hash":
        return [part for item in client.hgetall(key).items() for part in item]
    if kind == "list":
        return list(client.lrange(key, 0, -1))
    if kind == "set":
        return list(client.smembers(key))
    if kind == "zset":
        return [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
    if kind == "stream":
        return [part for _, fields in client.xrange(key) for item in fields.items() for part in item]
    return []


def every_value(client: redis.Redis, pattern: str = "*") -> Iterator[tuple[bytes, bytes]]:
    """(key, value) for every key matching ``pattern`` and every element or field of its value."""
    for key in client.scan_iter(pattern, count=1000):
        yield key, key
        for value in _values(client, key):
            yield key, value
