"""Operators' endpoints: replay of dead-lettered requests (admin token) and audit export."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient

from forgetd.ledger import RequestState
from forgetd.settings import Settings
from tests.conftest import ADMIN_TOKEN

S = RequestState
BODY = {"texts": ["Alice Varn was born in Oslo in 1961."], "kind": "pii"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _dead_lettered(api: TestClient) -> str:
    request_id = str(api.post("/v1/deletions", json=BODY).json()["id"])
    ledger = api.app.state.forgetd.ledger  # type: ignore[attr-defined]
    for state in (S.QUEUED, S.UNLEARNING, S.DEAD_LETTER):
        ledger.transition(request_id, state, count_attempt=state is S.UNLEARNING)
    return request_id


def test_replay_queues_a_dead_letter_again_with_a_fresh_attempt_budget(
        api: TestClient, settings: Settings, redis_client: redis.Redis) -> None:
    request_id = _dead_lettered(api)

    response = api.post(f"/v1/admin/deletions/{request_id}/replay", headers=ADMIN)

    assert response.status_code == 200
    assert response.json()["state"] == "queued" and response.json()["attempts"] == 0
    assert redis_client.zscore(settings.key("queue", "default"), request_id) is not None
    assert redis_client.llen(settings.gpu_queue_name) == 1  # a batch job was asked for


def test_replay_needs_the_admin_scope(api: TestClient) -> None:
    request_id = _dead_lettered(api)

    response = api.post(f"/v1/admin/deletions/{request_id}/replay")  # the intake token

    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


def test_replay_of_a_request_that_is_not_stuck_is_409(api: TestClient) -> None:
    request_id = api.post("/v1/deletions", json=BODY).json()["id"]

    response = api.post(f"/v1/admin/deletions/{request_id}/replay", headers=ADMIN)

    assert response.status_code == 409
    assert "received" in response.json()["detail"]


def test_replay_of_an_unknown_request_is_404(api: TestClient) -> None:
    assert api.post(f"/v1/admin/deletions/{'0' * 32}/replay", headers=ADMIN).status_code == 404


def test_audit_trail_lists_every_state_change_and_no_text(api: TestClient) -> None:
    request_id = _dead_lettered(api)

    response = api.get(f"/v1/deletions/{request_id}/audit")

    assert response.status_code == 200
    assert [entry["state"] for entry in response.json()] == ["received", "queued", "unlearning", "dead_letter"]
    assert response.json()[1]["previous_state"] == "received"
    assert "Varn" not in response.text
