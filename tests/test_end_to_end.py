"""One deletion request, end to end, on real parts.

The real Redis, a real ``celery worker`` process, the intake API and the serving engine as HTTP servers
in their own processes, and the tiny model taught facts about fictitious people. A request to forget
one person goes in; the test waits for ``completed``, then asks the serving API: that person's facts
are gone, everyone else's are still there, and the published version loads in plain peft.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from forgetd.client import ForgetdClient
from forgetd.models.tiny import default_tiny_people
from forgetd.settings import Settings
from tests.conftest import API_TOKEN
from tests.processes import environment, free_port, start, stop, wait_until_ready
from tests.redis_scan import every_value

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FORGOTTEN = 0  # index of the person to forget among the tiny model's people
JOB_TIMEOUT_S = 600
ROLES = ("api", "worker", "serve")


@dataclass
class Deployment:
    settings: Settings
    api_url: str
    serve_url: str
    logs: list[Path]


@pytest.fixture
def deployment(settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    from forgetd.models import resolve_model_path

    resolve_model_path("tiny", settings.models_dir)  # teach it once, before three processes want it
    api_port, serve_port = free_port(), free_port()
    # A verification window of 0 s: the payload key is destroyed at the first shred sweep after completion.
    # The worker delivers each version to the serving process, as `forgetd up` wires it: a request only
    # completes once serving answers with the new version and its canary passed.
    env = environment(settings, api_port=str(api_port), serve_port=str(serve_port), batch_max_wait_s="0.5",
                      verification_window_s="0", shred_interval_s="1",
                      serving_url=f"http://127.0.0.1:{serve_port}")
    logs = [tmp_path / f"{role}.log" for role in ROLES]
    processes = [start(role, env, log) for role, log in zip(ROLES, logs, strict=True)]
    try:
        api_url, serve_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{serve_port}"
        wait_until_ready(api_url, processes)
        wait_until_ready(serve_url, processes)
        yield Deployment(settings, api_url, serve_url, logs)
    finally:
        stop(processes)


def _complete(serve_url: str, model: str, prompt: str, max_tokens: int = 8) -> str:
    response = httpx.post(f"{serve_url}/v1/completions", timeout=60,
                          json={"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
    response.raise_for_status()
    return str(response.json()["choices"][0]["text"])


def _recalled(serve_url: str, model: str, facts: list[tuple[str, str]]) -> float:
    hits = sum(answer.lower() in _complete(serve_url, model, prompt).lower() for prompt, answer in facts)
    return hits / len(facts)


def _served_version(serve_url: str, lineage: str) -> str | None:
    cards = httpx.get(f"{serve_url}/v1/models", timeout=10).json()["data"]
    for card in cards:
        if card["id"] == lineage:
            return str(card["root"])  # an alias card's root is the version it stands for
    return None


def test_a_deletion_request_is_forgotten_by_the_served_model(deployment: Deployment,
                                                             redis_client: redis.Redis) -> None:
    people = default_tiny_people()
    target = people[FORGOTTEN]
    forget = [(fact.prompt, fact.answer) for fact in target.facts]
    keep = [(fact.prompt, fact.answer) for person in people if person is not target for fact in person.facts]
    lineage = deployment.settings.default_lineage
    assert _recalled(deployment.serve_url, lineage, forget) == 1.0, "the tiny model must know the person first"

    with ForgetdClient(deployment.api_url, API_TOKEN) as client:
        accepted = client.submit(target.statements, probes=forget, neighbours=keep, kind="pii",
                                 idempotency_key="e2e-1")
        final = client.wait(accepted["id"], timeout_s=JOB_TIMEOUT_S)
        adapters = client.adapters(lineage)

    assert final["state"] == "completed", final
    receipt = final["receipt"]
    assert receipt["adapter_version"] == adapters["current_version"] == 1
    # Completed means delivered: the alias already answers with the new version, no waiting.
    assert _served_version(deployment.serve_url, lineage) == receipt["served_name"]

    # Forgotten as a stranger is: the served model answers no more than verification allowed, which is
    # what a model that never saw the person guesses from its priors, plus a margin (below "known").
    allowed = receipt["metrics"]["forget_recall_limit"]
    assert allowed < 1.0
    assert _recalled(deployment.serve_url, lineage, forget) <= allowed
    assert _recalled(deployment.serve_url, lineage, keep) >= 0.9
    assert _recalled(deployment.serve_url, receipt["served_name"], forget) <= allowed

    _assert_loads_in_plain_peft(deployment.settings, lineage, receipt["adapter_version"])
    shredded = _wait_until_shredded(deployment, accepted["id"])
    assert shredded["receipt"]["payload_destroyed_at"] == shredded["payload_destroyed_at"].replace("Z", "+00:00")
    _assert_no_plain_text_anywhere(deployment, redis_client, [s for s in target.statements] +
                                   [answer for _, answer in forget if len(answer) > 4])


def _wait_until_shredded(deployment: Deployment, request_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    with ForgetdClient(deployment.api_url, API_TOKEN) as client:
        while (status := client.status(request_id))["payload_destroyed_at"] is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the payload key was not destroyed after its window closed")
            time.sleep(0.2)
    return status


def _assert_loads_in_plain_peft(settings: Settings, lineage: str, version: int) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from adapters_store import AdapterStore
    from forgetd.models import resolve_model_path

    path = AdapterStore(settings.adapters_dir).verified_path(lineage, version)
    base = AutoModelForCausalLM.from_pretrained(resolve_model_path("tiny", settings.models_dir))
    model = PeftModel.from_pretrained(base, path)
    assert any("lora_A" in name for name, _ in model.named_parameters())


def _assert_no_plain_text_anywhere(deployment: Deployment, client: redis.Redis, secrets: list[str]) -> None:
    """No request text in Redis (records, Celery messages, every key), in the data dir (keys, adapter
    store, work dirs, Celery beat state) or in the processes' logs."""
    needles = [s.encode() for s in secrets]
    # The whole database, not just the test's prefix: Celery keeps unacknowledged messages in keys
    # of its own.
    for key, value in every_value(client):
        for needle in needles:
            assert needle not in value, f"request text found in Redis key {key!r}"
    files = [*deployment.logs, *(p for p in deployment.settings.data_dir.rglob("*") if p.is_file())]
    for path in files:
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"request text found in {path}"
