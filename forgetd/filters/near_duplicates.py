"""Near-duplicate detection: MinHash signatures of keyed-hash word shingles, banded for lookup (LSH).

A request whose texts share most of their word 3-grams with a request the lineage already has (pending
or completed) is a near-duplicate of it: the same text reformatted, re-cased, or with a word changed.
Every shingle is hashed with the deployment's HMAC key before MinHash sees it, so what Redis stores (the
signature, the band keys) reveals nothing about the text without the key, like the exact-duplicate
fingerprints (:mod:`forgetd.filters.duplicates`).

Keys, under the deployment's prefix: ``nd:<lineage>:<band>:<band hash>`` (a set of request ids sharing
that band), ``ndsig:<id>`` (the request's signature) and ``ndowned:<id>`` (its band keys, so a request
that is given up can be released without its payload). Similarity is the share of equal signature
values, an unbiased estimate of the Jaccard similarity of the shingle sets (Broder 1997); LSH with
``BANDS`` bands of ``ROWS`` rows finds pairs above about ``(1 / BANDS) ** (1 / ROWS)`` = 0.5 as candidates,
and the signature comparison decides against ``threshold``.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from forgetd.ledger.crypto import Fingerprinter, normalise_text

SHINGLE_WORDS = 3
BANDS, ROWS = 16, 4
PERMUTATIONS = BANDS * ROWS
DEFAULT_THRESHOLD = 0.7
_PRIME = (1 << 61) - 1  # a Mersenne prime above every 60-bit shingle hash
_rng = random.Random("forgetd minhash")  # public, fixed coefficients: the keyed shingle hashes hold the secret
_COEFFICIENTS = [(_rng.randrange(1, _PRIME), _rng.randrange(0, _PRIME)) for _ in range(PERMUTATIONS)]


@dataclass(frozen=True)
class NearDuplicateVerdict:
    """The most similar earlier requests of the lineage (estimated Jaccard similarity each)."""

    similar: dict[str, float]
    threshold: float

    @property
    def owners(self) -> list[str]:
        return sorted(rid for rid, score in self.similar.items() if score >= self.threshold)

    @property
    def is_near_duplicate(self) -> bool:
        return bool(self.owners)


def shingles(texts: Sequence[str]) -> set[str]:
    """Word ``SHINGLE_WORDS``-grams of the normalised texts (a shorter text is one shingle)."""
    out: set[str] = set()
    for text in texts:
        words = normalise_text(text).split()
        if words and len(words) <= SHINGLE_WORDS:
            out.add(" ".join(words))
        out.update(" ".join(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1))
    return out


def signature(fingerprinter: Fingerprinter, texts: Sequence[str]) -> list[int]:
    """The MinHash signature (``PERMUTATIONS`` values) of the texts' keyed shingle hashes."""
    hashes = [int(fingerprinter.document(b"shingle\x00" + s.encode())[:15], 16) for s in shingles(texts)]
    if not hashes:
        raise ValueError("no shingles: the texts are empty after normalisation")
    return [min((a * h + b) % _PRIME for h in hashes) for a, b in _COEFFICIENTS]


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Share of equal values of two signatures: the estimated Jaccard similarity."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


class NearDuplicateIndex:
    """A lineage's requests by MinHash band, in Redis."""

    def __init__(self, client: redis.Redis, key_prefix: str, fingerprinter: Fingerprinter,
                 threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self._client = client
        self._prefix = key_prefix
        self._fingerprinter = fingerprinter
        self._threshold = threshold

    def check_and_add(self, lineage: str, request_id: str, texts: Sequence[str]) -> NearDuplicateVerdict:
        """Compare the request with the lineage's earlier ones, then index it (idempotent per request)."""
        sig = signature(self._fingerprinter, texts)
        bands = self._band_keys(lineage, sig)
        candidates: set[str] = set()
        for members in self._pipeline_smembers(bands):
            candidates.update(m.decode() for m in members)
        candidates.discard(request_id)
        similar = self._scores(sorted(candidates), sig)
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._sig_key(request_id), _pack(sig))
        for key in bands:
            pipe.sadd(key, request_id)
        pipe.sadd(self._owned_key(request_id), *bands)
        pipe.execute()
        return NearDuplicateVerdict(similar, self._threshold)

    def release(self, request_id: str) -> int:
        """Remove the request from the index (it will never be carried out); returns the bands it left."""
        bands = [key.decode() for key in self._client.smembers(self._owned_key(request_id))]
        pipe = self._client.pipeline(transaction=True)
        for key in bands:
            pipe.srem(key, request_id)
        pipe.delete(self._sig_key(request_id), self._owned_key(request_id))
        pipe.execute()
        return len(bands)

    def _scores(self, candidates: list[str], sig: list[int]) -> dict[str, float]:
        if not candidates:
            return {}
        stored = self._client.mget([self._sig_key(rid) for rid in candidates])
        return {rid: similarity(sig, _unpack(raw)) for rid, raw in zip(candidates, stored, strict=True)
                if raw is not None}

    def _pipeline_smembers(self, keys: list[str]) -> list[set[bytes]]:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.smembers(key)
        return list(pipe.execute())

    def _band_keys(self, lineage: str, sig: list[int]) -> list[str]:
        keys = []
        for band in range(BANDS):
            digest = hashlib.blake2b(_pack(sig[band * ROWS:(band + 1) * ROWS]), digest_size=8).hexdigest()
            keys.append(f"{self._prefix}:nd:{lineage}:{band}:{digest}")
        return keys

    def _sig_key(self, request_id: str) -> str:
        return f"{self._prefix}:ndsig:{request_id}"

    def _owned_key(self, request_id: str) -> str:
        return f"{self._prefix}:ndowned:{request_id}"


def _pack(values: Sequence[int]) -> bytes:
    return struct.pack(f">{len(values)}Q", *values)


def _unpack(raw: bytes) -> list[int]:
    return list(struct.unpack(f">{len(raw) // 8}Q", raw))
