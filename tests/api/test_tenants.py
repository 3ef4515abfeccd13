"""Tenants' API keys and scopes, isolation between tenants, and per-tenant rate limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from forgetd.api.app import create_app
from forgetd.security.api_keys import ApiKeys, Scope
from forgetd.settings import Settings

BODY = {"texts": ["Alice Varn was born in Oslo in 1961."], "kind": "pii"}


@pytest.fixture
def keys(settings: Settings, redis_client: redis.Redis) -> ApiKeys:
    return ApiKeys(redis_client, settings.key_prefix, settings.secret_bytes("hmac_key"))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_tenant_sees_only_its_own_requests(client: TestClient, keys: ApiKeys) -> None:
    acme, _ = keys.create("acme", {Scope.SUBMIT, Scope.READ})
    globex, _ = keys.create("globex", {Scope.SUBMIT, Scope.READ})
    request_id = client.post("/v1/deletions", json=BODY, headers=_auth(acme)).json()["id"]

    assert client.get(f"/v1/deletions/{request_id}", headers=_auth(acme)).status_code == 200
    assert client.get(f"/v1/deletions/{request_id}", headers=_auth(globex)).status_code == 404
    assert client.get(f"/v1/deletions/{request_id}/audit", headers=_auth(globex)).status_code == 404


def test_the_same_idempotency_key_in_two_tenants_makes_two_requests(client: TestClient, keys: ApiKeys) -> None:
    acme, _ = keys.create("acme", {Scope.SUBMIT})
    globex, _ = keys.create("globex", {Scope.SUBMIT})
    headers = {"Idempotency-Key": "ticket-7"}

    first = client.post("/v1/deletions", json=BODY, headers=_auth(acme) | headers).json()["id"]
    second = client.post("/v1/deletions", json=BODY, headers=_auth(globex) | headers).json()["id"]

    assert first != second


@pytest.mark.parametrize(
    ("scopes", "method", "path", "status"),
    [
        ({Scope.READ}, "post", "/v1/deletions", 403),
        ({Scope.SUBMIT}, "get", f"/v1/deletions/{'0' * 32}", 403),
        ({Scope.SUBMIT, Scope.READ}, "post", f"/v1/admin/deletions/{'0' * 32}/replay", 403),
        ({Scope.ADMIN}, "post", f"/v1/admin/deletions/{'0' * 32}/replay", 404),
    ],
)
def test_scopes_are_enforced(client: TestClient, keys: ApiKeys, scopes: set[Scope], method: str, path: str,
                             status: int) -> None:
    key, _ = keys.create("acme", scopes)

    response = client.request(method, path, json=BODY, headers=_auth(key))

    assert response.status_code == status


def test_a_revoked_key_is_refused(client: TestClient, keys: ApiKeys) -> None:
    key, info = keys.create("acme", {Scope.SUBMIT})
    assert keys.revoke(info.key_id)

    assert client.post("/v1/deletions", json=BODY, headers=_auth(key)).status_code == 401


@pytest.mark.parametrize("token", ["fgd_0000000000000000_" + "x" * 43, "fgd_short", "", "x" * 300])
def test_unknown_or_malformed_keys_are_refused(client: TestClient, token: str) -> None:
    assert client.post("/v1/deletions", json=BODY, headers=_auth(token)).status_code == 401


def test_keys_are_stored_hashed(keys: ApiKeys, redis_client: redis.Redis, settings: Settings) -> None:
    key, info = keys.create("acme", {Scope.READ})
    secret = key.rsplit("_", 1)[1]

    stored = redis_client.hgetall(f"{settings.key_prefix}:apikey:{info.key_id}")

    assert all(secret.encode() not in value for value in stored.values())
    assert [k.key_id for k in keys.list()] == [info.key_id]


def test_bad_tenant_names_are_refused(keys: ApiKeys) -> None:
    with pytest.raises(ValueError, match="invalid tenant"):
        keys.create("../acme", {Scope.READ})


def test_rate_limit_answers_429_with_retry_after(settings: Settings, keys: ApiKeys) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 3})
    acme, _ = keys.create("acme", {Scope.SUBMIT})
    globex, _ = keys.create("globex", {Scope.SUBMIT})
    with TestClient(create_app(limited)) as client:
        statuses = [client.post("/v1/deletions", json=BODY, headers=_auth(acme)).status_code for _ in range(4)]
        refused = client.post("/v1/deletions", json=BODY, headers=_auth(acme))
        other_tenant = client.post("/v1/deletions", json=BODY, headers=_auth(globex))

    assert statuses == [202, 202, 202, 429]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["content-type"] == "application/problem+json"
    assert other_tenant.status_code == 202
