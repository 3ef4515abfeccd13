from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from serving_helpers import LINEAGE, PROMPT, Publish

from adapters_store import AdapterStore
from forgetd.serving.app import create_serving_app
from forgetd.serving.engine import EmbeddedEngine
from forgetd.serving.notify import announce_version
from forgetd.serving.schemas import MAX_PROMPTS, MAX_TOKENS_LIMIT
from forgetd.settings import Settings


@pytest.fixture
def client(settings: Settings, engine: EmbeddedEngine, publish: Publish) -> Iterator[TestClient]:
    publish(1)  # the app's start-up sync must pick it up
    with TestClient(create_serving_app(settings, engine, subscribe=False)) as client:
        yield client


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_not_ready_without_engine(settings: Settings) -> None:
    app = create_serving_app(settings, subscribe=False)  # lifespan not run: no engine yet
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "service_unavailable"


def test_models_lists_base_versions_and_aliases(client: TestClient, engine: EmbeddedEngine) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    cards = {card["id"]: card for card in body["data"]}
    base = engine.base_model_id
    assert set(cards) == {base, LINEAGE, f"{LINEAGE}-v1"}
    assert cards[base]["parent"] is None
    assert cards[f"{LINEAGE}-v1"]["parent"] == base
    assert cards[LINEAGE] | {"created": 0} == {
        "id": LINEAGE,
        "object": "model",
        "created": 0,
        "owned_by": "forgetd",
        "root": f"{LINEAGE}-v1",
        "parent": base,
    }


def test_completion_names_the_version_that_answered(client: TestClient) -> None:
    response = client.post("/v1/completions", json={"model": LINEAGE, "prompt": PROMPT, "max_tokens": 4})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["model"] == f"{LINEAGE}-v1"
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert isinstance(choice["text"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["completion_tokens"] <= 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_completion_of_several_prompts(client: TestClient, engine: EmbeddedEngine) -> None:
    response = client.post(
        "/v1/completions", json={"model": engine.base_model_id, "prompt": [PROMPT, "Hi"], "temperature": 0}
    )
    assert response.status_code == 200
    assert [c["index"] for c in response.json()["choices"]] == [0, 1]
    assert response.json()["model"] == engine.base_model_id


def test_unknown_model_is_404_in_openai_shape(client: TestClient) -> None:
    response = client.post("/v1/completions", json={"model": "nope", "prompt": PROMPT})
    assert response.status_code == 404
    assert response.json()["error"] | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": PROMPT}, "model"),
        ({"model": LINEAGE}, "prompt"),
        ({"model": LINEAGE, "prompt": ""}, "prompt"),
        ({"model": LINEAGE, "prompt": []}, "prompt"),
        ({"model": LINEAGE, "prompt": [PROMPT] * (MAX_PROMPTS + 1)}, "prompt"),
        ({"model": LINEAGE, "prompt": PROMPT, "max_tokens": 0}, "max_tokens"),
        ({"model": LINEAGE, "prompt": PROMPT, "max_tokens": MAX_TOKENS_LIMIT + 1}, "max_tokens"),
        ({"model": LINEAGE, "prompt": PROMPT, "temperature": -0.5}, "temperature"),
        ({"model": LINEAGE, "prompt": PROMPT, "n": 2}, "n"),
        ({"model": LINEAGE, "prompt": PROMPT, "stream": [True]}, "stream"),
        ({"model": LINEAGE, "prompt": PROMPT, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_bad_body_is_400_in_openai_shape(client: TestClient, body: dict[str, object], param: str) -> None:
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_bad_body_error_does_not_echo_the_prompt(client: TestClient) -> None:
    secret = "Jane Doe lives at 12 Secret Lane"
    response = client.post("/v1/completions", json={"model": LINEAGE, "prompt": secret, "max_tokens": -1})
    assert response.status_code == 400
    assert secret not in response.text


def test_metrics_count_completions(client: TestClient) -> None:
    client.post("/v1/completions", json={"model": LINEAGE, "prompt": PROMPT, "max_tokens": 2})
    client.post("/v1/completions", json={"model": "nope", "prompt": PROMPT})
    text = client.get("/metrics").text
    assert 'forgetd_completions_total{endpoint="completions",status="2xx"}' in text
    assert 'forgetd_completions_total{endpoint="completions",status="4xx"}' in text
    assert "forgetd_completion_tokens_total" in text
    assert f'forgetd_served_adapter_version{{lineage="{LINEAGE}"}} 1.0' in text


def test_app_builds_its_engine_and_follows_announcements(
    settings: Settings,
    random_llama_dir: Path,
    store: AdapterStore,
    publish: Publish,
    redis_client: redis.Redis,
) -> None:
    settings = settings.model_copy(update={"model": str(random_llama_dir), "store_dir": store.root})
    request = {"model": LINEAGE, "prompt": PROMPT, "max_tokens": 2}
    with TestClient(create_serving_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        # The default lineage's alias answers as the base until its first version.
        assert client.post("/v1/completions", json=request).json()["model"] == Path(random_llama_dir).name
        publish(1)
        announce_version(redis_client, settings.key_prefix, LINEAGE, 1)
        deadline = time.monotonic() + 5.0
        while client.post("/v1/completions", json=request).json()["model"] != f"{LINEAGE}-v1":
            assert time.monotonic() < deadline, "the announced version never answered"
            time.sleep(0.05)
        assert client.post("/v1/completions", json=request).json()["model"] == f"{LINEAGE}-v1"
