"""The resolver folder (vLLM's filesystem resolver), the canary's probe choice, and the retried HTTP calls."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adapters_store import AdapterStore, Manifest
from adapters_store.fsio import sha256_file
from forgetd.payload import Probe
from forgetd.serving.sinks import Delivery, DeliveryError
from forgetd.serving.sinks.canary import select_probes
from forgetd.serving.sinks.http import EndpointError, RetryPolicy, ServingEndpoint
from forgetd.serving.sinks.vllm import ResolverFolder, VllmSink

BASE = "served-base"


@pytest.fixture
def publish(store: AdapterStore, adapter_dir: Callable[[int], Path]) -> Callable[[int], Manifest]:
    def run(seed: int) -> Manifest:
        return store.publish("support", adapter_dir(seed), base_model="tiny-llama", method="graddiff",
                             request_ids=[f"r{seed}"], metrics={})

    return run


def test_each_version_is_copied_under_its_name_for_the_served_base_and_the_older_ones_removed(
        store: AdapterStore, publish: Callable[[int], Manifest], tmp_path: Path) -> None:
    folder = tmp_path / "resolver"
    sink = VllmSink(ResolverFolder(store, folder, BASE), None)
    v1 = publish(1)

    sink.deliver(Delivery(v1, None))

    config = json.loads((folder / "support-v1" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == BASE and config["peft_type"] == "LORA"
    assert sha256_file(folder / "support-v1" / "adapter_model.safetensors") == v1.files["adapter_model.safetensors"]

    v2 = publish(2)
    sink.deliver(Delivery(v2, v1))
    sink.deliver(Delivery(v2, v1))  # a redelivery finds its own folder

    assert sorted(p.name for p in folder.iterdir()) == ["support-v2"]


def test_a_folder_holding_other_weights_under_the_name_is_refused(
        store: AdapterStore, publish: Callable[[int], Manifest], tmp_path: Path,
        adapter_dir: Callable[[int], Path]) -> None:
    folder = tmp_path / "resolver"
    (folder / "support-v1").mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (folder / "support-v1" / name).write_bytes((adapter_dir(9) / name).read_bytes())

    with pytest.raises(DeliveryError, match="exists with other weights or base; a served name is never reused"):
        VllmSink(ResolverFolder(store, folder, BASE), None).deliver(Delivery(publish(1), None))


def test_the_canary_takes_probes_from_every_request_in_turn() -> None:
    a = [Probe(prompt=f"a{i}", completion="x") for i in range(3)]
    b = [Probe(prompt="b0", completion="y")]

    assert [p.prompt for p in select_probes([a, b], 3)] == ["a0", "b0", "a1"]
    assert select_probes([a, b], 0) == []


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503 to the first ``failures`` requests, then an empty model list."""

    failures = 0
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        ok = type(self).seen > type(self).failures
        body = json.dumps({"object": "list", "data": []}).encode() if ok else b"busy"
        self.send_response(200 if ok else 503)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[Callable[[int], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(failures: int) -> str:
        handler = type("Handler", (_Flaky,), {"failures": failures, "seen": 0})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_transient_answers_are_retried_with_backoff_then_given_up(flaky: Callable[[int], str]) -> None:
    retry = RetryPolicy(attempts=3, backoff_s=0.01)

    assert ServingEndpoint(flaky(2), retry=retry).models() == {}
    with pytest.raises(EndpointError, match="GET /v1/models: HTTP 503 after 3 attempts"):
        ServingEndpoint(flaky(3), retry=retry).models()
