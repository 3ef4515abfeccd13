"""Exact-duplicate detection by keyed HMAC fingerprints of normalised texts.

Each text a lineage has been asked to forget claims ``p:fp:<lineage>:<hmac>`` for the request that
asked first. A request none of whose texts is new is a duplicate of the requests that own them.
Claims are idempotent (a redelivered admit finds its own claims) and released when a request is
abandoned (dead-lettered), so a later request for the same text is not refused as a duplicate of one
that will never be carried out. Each request's claims are listed under ``p:fpowned:<id>``: releasing
needs no payload, which may already be shredded or unreadable when a request is given up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from forgetd.ledger.crypto import Fingerprinter

_CLAIM = """
-- KEYS[1]: the request's list of owned claims; KEYS[2..]: one fingerprint key per text.
-- ARGV[1]: request id. Returns the owner of each fingerprint key.
local owners = {}
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1], 'NX')
  owners[i - 1] = redis.call('GET', KEYS[i])
  if owners[i - 1] == ARGV[1] then redis.call('SADD', KEYS[1], KEYS[i]) end
end
return owners
"""

_RELEASE = """
-- KEYS[1]: the request's list of owned claims; ARGV[1]: request id. Deletes only the fingerprint keys
-- this request still owns, then the list.
local released = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('GET', key) == ARGV[1] then released = released + redis.call('DEL', key) end
end
redis.call('DEL', KEYS[1])
return released
"""


@dataclass(frozen=True)
class DuplicateVerdict:
    new_texts: int
    owners: frozenset[str]  # other requests that already own some of the texts

    @property
    def is_duplicate(self) -> bool:
        return self.new_texts == 0


class ExactDuplicateIndex:
    def __init__(self, client: redis.Redis, key_prefix: str, fingerprinter: Fingerprinter) -> None:
        self._prefix = key_prefix
        self._fingerprinter = fingerprinter
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def claim(self, lineage: str, request_id: str, texts: Sequence[str]) -> DuplicateVerdict:
        keys = [self._owned_key(request_id), *self._keys(lineage, texts)]
        owners = [owner.decode() for owner in self._claim(keys=keys, args=[request_id])]
        return DuplicateVerdict(
            new_texts=sum(owner == request_id for owner in owners),
            owners=frozenset(owner for owner in owners if owner != request_id),
        )

    def release(self, request_id: str) -> int:
        """Give up every claim ``request_id`` still holds; returns how many were released."""
        return int(self._release(keys=[self._owned_key(request_id)], args=[request_id]))

    def _owned_key(self, request_id: str) -> str:
        return f"{self._prefix}:fpowned:{request_id}"

    def _keys(self, lineage: str, texts: Sequence[str]) -> list[str]:
        return [f"{self._prefix}:fp:{lineage}:{self._fingerprinter.text(text)}" for text in texts]
