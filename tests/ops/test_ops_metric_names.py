"""The dashboard and the alerts use only metric names that forgetd's processes really export.

Starts the intake API, a worker and the serving engine as real processes (``python -m forgetd.cli
ROLE``) against the test Redis, scrapes each one's ``/metrics``, and checks every metric name in
``ops/grafana/forgetd.json`` and ``ops/prometheus/alerts.yaml`` against what they export. A labelled
metric with no sample yet shows only its HELP and TYPE lines: those count as exported.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from tests.ops.promql_names import PROMETHEUS_SERIES, exported_names, metric_names
from tests.ops.tools import ALERTS, DASHBOARD, tool

pytestmark = pytest.mark.integration

API_TOKEN = "ops-test-token"
START_TIMEOUT_S = 120.0

# What each role exports from its own scrape-time collectors (module-level metrics are in every role).
ROLE_FAMILIES = {
    "api": {"forgetd_requests", "forgetd_oldest_request_age_seconds", "forgetd_redis_up"},
    "worker": {"forgetd_redis_up", "forgetd_gpu_memory_bytes"},
    "serve": {"forgetd_gpu_memory_bytes"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _random_llama(path: Path) -> Path:
    """A two-layer random Llama with a byte-level tokenizer: a model folder the engine loads in seconds."""
    from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = ByT5Tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _get(url: str, processes: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path]) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for role, process in processes.items():
            if process.poll() is not None:
                pytest.fail(f"forgetd {role} exited with {process.returncode}:\n{logs[role].read_text()[-3000:]}")
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response.text
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def scrapes(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``{role: /metrics text}`` of a real API (holding one request), worker and serving process."""
    tmp = tmp_path_factory.mktemp("ops-metrics")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    ports = {"api": _free_port(), "worker": _free_port(), "serve": _free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGETD_")} | {
        "FORGETD_DATA_DIR": str(tmp / "data"),
        "FORGETD_MODEL": str(tmp / "model"),
        "FORGETD_DEVICE": "cpu",
        "FORGETD_REDIS_URL": redis_url,
        "FORGETD_KEY_PREFIX": prefix,
        "FORGETD_QUEUE_NAME": f"{prefix}-admit",
        "FORGETD_GPU_QUEUE_NAME": f"{prefix}-gpu",
        "FORGETD_API_TOKEN": API_TOKEN,
        "FORGETD_API_PORT": str(ports["api"]),
        "FORGETD_SERVE_PORT": str(ports["serve"]),
        "FORGETD_WORKER_METRICS_PORT": str(ports["worker"]),
    }
    # The worker consumes a queue nobody sends to: the request stays in `received`, and no job starts.
    commands = {"api": ["api"], "worker": ["worker", "--no-beat", "--queues", f"{prefix}-unused"], "serve": ["serve"]}
    logs = {role: tmp / f"{role}.log" for role in commands}

    def start(role: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "forgetd.cli", *commands[role]], env=env,
                                stdout=logs[role].open("wb"), stderr=subprocess.STDOUT)

    processes = {role: start(role) for role in ("api", "worker")}
    try:
        _random_llama(tmp / "model")  # while the API and the worker start
        processes["serve"] = start("serve")
        api = f"http://127.0.0.1:{ports['api']}"
        _get(f"{api}/readyz", processes, logs)
        accepted = httpx.post(f"{api}/v1/deletions", timeout=10, headers={"Authorization": f"Bearer {API_TOKEN}"},
                              json={"texts": ["Ada Quill was born in Port Verrin."], "kind": "other"})
        assert accepted.status_code == 202, accepted.text
        yield {
            "api": _get(f"{api}/metrics", processes, logs),
            "worker": _get(f"http://127.0.0.1:{ports['worker']}/metrics", processes, logs),
            "serve": _get(f"http://127.0.0.1:{ports['serve']}/metrics", processes, logs),
        }
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


def _dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found[f"variable {variable['name']!r}"] = variable["query"]["query"]
    return found


def _alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return {f"alert {rule['alert']}": rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def test_each_role_exports_its_scrape_time_metrics(scrapes: dict[str, str]) -> None:
    for role, families in ROLE_FAMILIES.items():
        missing = families - exported_names(scrapes[role])
        assert not missing, f"forgetd {role} does not export {sorted(missing)}"
    # Read from the ledger at scrape time: the request the fixture submitted waits in `received`.
    api = [line for line in scrapes["api"].splitlines() if line.startswith("forgetd_")]
    assert 'forgetd_requests{state="received"} 1.0' in api, api
    assert any(line.startswith('forgetd_oldest_request_age_seconds{state="received"}') for line in api), api
    assert "forgetd_redis_up 1.0" in api, api
    assert "forgetd_redis_up 1.0" in scrapes["worker"].splitlines()


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_dashboard_and_alerts_use_only_exported_metrics(scrapes: dict[str, str], source: str) -> None:
    exported = set().union(*(exported_names(text) for text in scrapes.values())) | PROMETHEUS_SERIES
    expressions = _dashboard_expressions() if source == "dashboard" else _alert_expressions()
    assert expressions, f"no expressions found in the {source}"
    unknown = {}
    for where, expr in expressions.items():
        names = metric_names(expr)
        assert names, f"{where}: no metric name found in {expr!r}"
        if names - exported:
            unknown[where] = sorted(names - exported)
    assert not unknown, f"the {source} uses metrics that no forgetd process exports: {unknown}"


def test_scrapes_pass_promtool_check_metrics(scrapes: dict[str, str]) -> None:
    promtool = tool("promtool")
    for role, text in scrapes.items():
        result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert result.returncode == 0, f"forgetd {role}'s /metrics:\n{result.stdout}{result.stderr}"


def test_the_name_check_catches_an_unknown_metric() -> None:
    exposition = "# HELP forgetd_x_total X.\n# TYPE forgetd_x_total counter\n"
    exported = exported_names(exposition)
    assert metric_names("sum(rate(forgetd_x_total[5m]))") <= exported
    assert metric_names('sum(rate(forgetd_y_total{a="forgetd_x_total"}[5m])) by (job)') - exported == {
        "forgetd_y_total"}
