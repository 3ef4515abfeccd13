"""Rolling a lineage back: ``POST /v1/adapters/{lineage}/rollback`` (admin) and ``forgetd adapters rollback``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import torch
from fastapi.testclient import TestClient
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM
from typer.testing import CliRunner

from adapters_store import AdapterStore
from forgetd.cli import app
from forgetd.serving.notify import adapters_channel
from forgetd.settings import Settings, get_settings
from tests.conftest import ADMIN_TOKEN
from tests.serving.serving_helpers import tamper

LINEAGE = "default"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def store(settings: Settings, tmp_path: Path) -> AdapterStore:
    """The settings' store holding versions 1 and 2 of the lineage (real PEFT LoRA files)."""
    store = AdapterStore(settings.adapters_dir)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
        model.save_pretrained(str(tmp_path / f"adapter-{seed}"))
        store.publish(LINEAGE, tmp_path / f"adapter-{seed}", base_model="tiny-llama", method="graddiff",
                      request_ids=[f"req-{seed}"], metrics={})
    return store


@pytest.fixture
def announcements(redis_client: redis.Redis, settings: Settings) -> Iterator[redis.client.PubSub]:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(adapters_channel(settings.key_prefix))
    yield pubsub
    pubsub.close()


def _announced(pubsub: redis.client.PubSub) -> dict[str, object] | None:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            return dict(json.loads(message["data"]))
    return None


def test_rollback_moves_the_pointer_records_why_and_announces(
    api: TestClient, store: AdapterStore, announcements: redis.client.PubSub
) -> None:
    response = api.post(f"/v1/adapters/{LINEAGE}/rollback", json={"version": 1, "reason": "v2 regressed"},
                        headers=ADMIN)

    assert response.status_code == 200, response.text
    assert response.json()["current_version"] == 1 == store.current_version(LINEAGE)
    event = store.history(LINEAGE)[-1]
    assert (event["event"], event["version"], event["previous"]) == ("set_current", 1, 2)
    assert event["reason"] == "v2 regressed (by settings-admin)"
    assert _announced(announcements) == {"lineage": LINEAGE, "version": 1}


@pytest.mark.parametrize(
    ("lineage", "body", "headers", "status"),
    [
        (LINEAGE, {"version": 1, "reason": "x"}, {}, 403),  # the intake token lacks the admin scope
        (LINEAGE, {"version": 9, "reason": "x"}, ADMIN, 404),
        ("Not-A-Lineage", {"version": 1, "reason": "x"}, ADMIN, 404),
        (LINEAGE, {"version": 1, "reason": " "}, ADMIN, 422),
        (LINEAGE, {"version": 0, "reason": "x"}, ADMIN, 422),
    ],
)
def test_refused_rollbacks_leave_the_pointer(
    api: TestClient, store: AdapterStore, lineage: str, body: dict[str, object], headers: dict[str, str],
    status: int,
) -> None:
    assert api.post(f"/v1/adapters/{lineage}/rollback", json=body, headers=headers).status_code == status
    assert store.current_version(LINEAGE) == 2


def test_rollback_to_a_tampered_version_is_409(api: TestClient, store: AdapterStore) -> None:
    tamper(store.version_path(LINEAGE, 1) / "adapter_model.safetensors")

    response = api.post(f"/v1/adapters/{LINEAGE}/rollback", json={"version": 1, "reason": "x"}, headers=ADMIN)

    assert response.status_code == 409
    assert store.current_version(LINEAGE) == 2


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FORGETD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FORGETD_KEY_PREFIX", settings.key_prefix)
    monkeypatch.setenv("FORGETD_REDIS_URL", settings.redis_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_rollback(cli_env: None, store: AdapterStore, announcements: redis.client.PubSub) -> None:
    result = CliRunner().invoke(app, ["adapters", "rollback", LINEAGE, "1", "--reason", "bad answers"])

    assert result.exit_code == 0, result.output
    assert f"{LINEAGE} now serves v1" in result.output
    assert store.current_version(LINEAGE) == 1
    assert store.history(LINEAGE)[-1]["reason"] == "bad answers"
    assert _announced(announcements) == {"lineage": LINEAGE, "version": 1}


def test_cli_rollback_to_a_missing_version_fails(cli_env: None, store: AdapterStore) -> None:
    result = CliRunner().invoke(app, ["adapters", "rollback", LINEAGE, "7"])

    assert result.exit_code == 1
    assert "no version 7" in result.output
    assert store.current_version(LINEAGE) == 2
