"""Per-tenant API keys with scopes, stored hashed in Redis.

A key reads ``fgd_<key id>_<secret>``. Redis keeps, per key id, the tenant, the scopes and a keyed
HMAC of the secret (never the secret): a leaked Redis dump does not let anyone in, and the id lets a
key be found without comparing against every stored hash. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

import redis

KEY_PATTERN = re.compile(r"^fgd_([0-9a-f]{16})_([A-Za-z0-9_-]{32,64})$")
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Scope(StrEnum):
    SUBMIT = "submit"
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant and what its key allows."""

    tenant: str
    scopes: frozenset[Scope]
    key_id: str


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant: str
    scopes: frozenset[Scope]
    created_at: float


class InvalidTenantError(ValueError):
    def __init__(self, tenant: str) -> None:
        super().__init__(f"invalid tenant name {tenant!r}: lowercase letters, digits, '-' and '_', at most 63")


class ApiKeys:
    def __init__(self, client: redis.Redis, key_prefix: str, pepper: bytes) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._pepper = pepper

    def create(self, tenant: str, scopes: set[Scope]) -> tuple[str, KeyInfo]:
        """A new key for ``tenant``; returns the key (shown once, never stored) and its record."""
        if not TENANT_PATTERN.match(tenant):
            raise InvalidTenantError(tenant)
        if not scopes:
            raise ValueError("a key needs at least one scope")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        info = KeyInfo(key_id, tenant, frozenset(scopes), time.time())
        self._redis.hset(self._key(key_id), mapping={
            "tenant": tenant, "scopes": ",".join(sorted(info.scopes)), "created_at": repr(info.created_at),
            "secret_hmac": self._digest(secret),
        })
        self._redis.sadd(self._index(), key_id)
        return f"fgd_{key_id}_{secret}", info

    def authenticate(self, presented: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise (which part was wrong is not said)."""
        match = KEY_PATTERN.match(presented)
        if match is None:
            return None
        key_id, secret = match.groups()
        stored = self._redis.hgetall(self._key(key_id))
        if not stored or not hmac.compare_digest(stored[b"secret_hmac"].decode(), self._digest(secret)):
            return None
        return Principal(stored[b"tenant"].decode(), _scopes(stored[b"scopes"].decode()), key_id)

    def list(self) -> list[KeyInfo]:
        infos = []
        for key_id in sorted(member.decode() for member in self._redis.smembers(self._index())):
            stored = self._redis.hgetall(self._key(key_id))
            if stored:
                infos.append(KeyInfo(key_id, stored[b"tenant"].decode(), _scopes(stored[b"scopes"].decode()),
                                     float(stored[b"created_at"])))
        return infos

    def revoke(self, key_id: str) -> bool:
        removed = self._redis.delete(self._key(key_id))
        self._redis.srem(self._index(), key_id)
        return bool(removed)

    def _digest(self, secret: str) -> str:
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).hexdigest()

    def _key(self, key_id: str) -> str:
        return f"{self._prefix}:apikey:{key_id}"

    def _index(self) -> str:
        return f"{self._prefix}:apikeys"


def _scopes(csv: str) -> frozenset[Scope]:
    return frozenset(Scope(name) for name in csv.split(",") if name)
