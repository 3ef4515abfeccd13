"""Exact-duplicate detection by keyed HMAC fingerprints of normalised texts.

Each text a lineage has been asked to forget claims ``p:fp:<lineage>:<hmac>`` for the request that
asked first. A request none of whose texts is new is a duplicate of the requests that own them.
Claims are idempotent (a redelivered admit finds its own claims) and released when a request is
abandoned, so a later request for the same text is not refused for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from forgetd.ledger.crypto import Fingerprinter

_CLAIM = """
-- KEYS: one fingerprint key per text; ARGV[1]: request id. Returns the owner of each key.
local owners = {}
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'NX')
  owners[i] = redis.call('GET', key)
end
return owners
"""

_RELEASE = """
-- KEYS: fingerprint keys; ARGV[1]: request id. Deletes only the keys this request owns.
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then released = released + redis.call('DEL', key) end
end
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
        owners = [owner.decode() for owner in self._claim(keys=self._keys(lineage, texts), args=[request_id])]
        return DuplicateVerdict(
            new_texts=sum(owner == request_id for owner in owners),
            owners=frozenset(owner for owner in owners if owner != request_id),
        )

    def release(self, lineage: str, request_id: str, texts: Sequence[str]) -> int:
        return int(self._release(keys=self._keys(lineage, texts), args=[request_id]))

    def _keys(self, lineage: str, texts: Sequence[str]) -> list[str]:
        return [f"{self._prefix}:fp:{lineage}:{self._fingerprinter.text(text)}" for text in texts]
