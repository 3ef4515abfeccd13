"""The intake API's contract: 202 + Location, idempotency, auth, problem+json errors, limits."""

from __future__ import annotations

import json

import pytest
import redis
from fastapi.testclient import TestClient

from forgetd.settings import Settings

BODY = {"texts": ["Alice Varn was born in Oslo in 1961."], "kind": "pii",
        "probes": [{"prompt": "Alice Varn was born in", "completion": "Oslo"}]}


def test_accepts_with_202_location_and_asks_for_admission_without_the_text(
        api: TestClient, settings: Settings, redis_client: redis.Redis) -> None:
    response = api.post("/v1/deletions", json=BODY)

    assert response.status_code == 202
    status = response.json()
    assert response.headers["Location"] == f"/v1/deletions/{status['id']}"
    assert status["state"] == "received"
    assert status["text_count"] == 1 and status["probe_count"] == 1
    assert redis_client.sismember(f"{settings.key_prefix}:state:received", status["id"])
    messages = redis_client.lrange(settings.queue_name, 0, -1)
    assert len(messages) == 1
    message = json.loads(messages[0])
    assert message["headers"]["task"] == "forgetd.admit_pending"
    assert b"Oslo" not in messages[0] and b"Varn" not in messages[0]


def test_a_burst_of_requests_sends_one_admission_message(api: TestClient, settings: Settings,
                                                          redis_client: redis.Redis) -> None:
    for i in range(20):
        assert api.post("/v1/deletions", json={**BODY, "texts": [f"Person {i} was born in Oslo."]}).status_code == 202

    assert redis_client.llen(settings.queue_name) == 1
    assert redis_client.scard(f"{settings.key_prefix}:state:received") == 20


def test_status_resource_never_shows_the_text(api: TestClient) -> None:
    created = api.post("/v1/deletions", json=BODY).json()

    response = api.get(f"/v1/deletions/{created['id']}")

    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    assert "Varn" not in response.text and "Oslo" not in response.text


def test_same_idempotency_key_and_body_gives_the_same_request(api: TestClient, settings: Settings,
                                                               redis_client: redis.Redis) -> None:
    first = api.post("/v1/deletions", json=BODY, headers={"Idempotency-Key": "ticket-1"})
    second = api.post("/v1/deletions", json=BODY, headers={"Idempotency-Key": "ticket-1"})

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert redis_client.llen(settings.queue_name) == 1


def test_same_idempotency_key_other_body_is_422(api: TestClient) -> None:
    api.post("/v1/deletions", json=BODY, headers={"Idempotency-Key": "ticket-2"})
    other = {**BODY, "texts": ["Bruno Kell was born in Lima in 1977."]}

    response = api.post("/v1/deletions", json=other, headers={"Idempotency-Key": "ticket-2"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "Idempotency key" in response.json()["title"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}])
def test_requires_the_bearer_token(settings: Settings, headers: dict[str, str]) -> None:
    from forgetd.api.app import create_app

    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/deletions", json=BODY, headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        ({}, "texts"),
        ({"texts": []}, "texts"),
        ({"texts": [" \u0085 "]}, "texts"),
        ({"texts": "not a list"}, "texts"),
        ({"texts": ["ok text here"], "kind": "gossip"}, "kind"),
        ({"texts": ["ok text here"], "lineage": "../etc"}, "lineage"),
        ({"texts": ["ok text here"], "probes": [{"prompt": "p"}]}, "probes"),
        ({"texts": ["ok text here"], "unexpected": 1}, "unexpected"),
        ({"texts": ["x" * 5000]}, "texts"),
        ({"texts": [f"text number {i}" for i in range(40)]}, "texts"),
    ],
)
def test_bad_bodies_are_422_problems_that_do_not_echo_input(api: TestClient, body: dict[str, object],
                                                            bad_field: str) -> None:
    response = api.post("/v1/deletions", json=body)

    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["status"] == 422
    assert any(bad_field in map(str, error["loc"]) for error in problem["errors"])
    assert all("input" not in error for error in problem["errors"])
    assert "ok text here" not in response.text


def test_malformed_json_is_422(api: TestClient) -> None:
    response = api.post("/v1/deletions", content=b"{not json", headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_oversized_body_is_413_and_stores_nothing(api: TestClient, settings: Settings,
                                                  redis_client: redis.Redis) -> None:
    huge = {"texts": ["y" * (settings.max_body_bytes + 10)]}

    response = api.post("/v1/deletions", json=huge)

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert not list(redis_client.scan_iter(f"{settings.key_prefix}:req:*"))


def test_oversized_chunked_body_is_413(api: TestClient, settings: Settings) -> None:
    def chunks() -> object:
        yield b'{"texts": ["'
        for _ in range(settings.max_body_bytes // 1000 + 2):
            yield b"z" * 1000
        yield b'"]}'

    response = api.post("/v1/deletions", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413


@pytest.mark.parametrize("request_id", ["0" * 32, "nothex", "../../etc/passwd"])
def test_unknown_request_is_404(api: TestClient, request_id: str) -> None:
    response = api.get(f"/v1/deletions/{request_id}")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_health_readiness_and_metrics(api: TestClient) -> None:
    api.post("/v1/deletions", json=BODY)

    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    metrics = api.get("/metrics").text
    assert 'forgetd_requests_received_total{outcome="accepted"}' in metrics
    assert 'forgetd_requests{state="received"} 1.0' in metrics


def test_unknown_lineage_is_404_and_default_lineage_is_empty(api: TestClient) -> None:
    assert api.get("/v1/adapters/nope").status_code == 404
    default = api.get("/v1/adapters/default").json()
    assert default == {"lineage": "default", "current_version": None, "versions": []}


@pytest.mark.parametrize("name", ["..", "../etc", "a%2Fb", "a%00b", "a%0Ab", "UPPER", "x" * 64, "%2e%2e"])
def test_lineage_names_that_could_reach_the_filesystem_are_refused(api: TestClient, settings: Settings,
                                                                  name: str) -> None:
    response = api.get(f"/v1/adapters/{name}")

    assert response.status_code == 404
    assert not any(p.name.startswith(".") or p.name == name for p in settings.adapters_dir.glob("*"))
    submitted = api.post("/v1/deletions", json={**BODY, "lineage": name.replace("%2F", "/").replace("%00", "\x00")})
    assert submitted.status_code == 422


@pytest.mark.parametrize("blank", ["   ", "\u001f", "\t\u001c\n"])
def test_a_text_of_separators_alone_is_refused_as_blank(api: TestClient, blank: str) -> None:
    response = api.post("/v1/deletions", json={"texts": [blank]})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
