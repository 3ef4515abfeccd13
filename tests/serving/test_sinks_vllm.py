"""The vLLM sink against a real server speaking vLLM's runtime LoRA API: forgetd's own ``serve`` process.

The server sees the adapter store as vLLM would: mounted at another path (``vllm_store_dir``) and
without the lineage's ``CURRENT`` pointer, so it has no alias of its own and serves exactly the
versions the sink loads, as vLLM does.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from adapters_store import AdapterStore, Manifest
from forgetd.payload import Probe
from forgetd.serving.sinks import CanaryFailedError, Delivery, DeliveryError, deliver
from forgetd.serving.sinks.http import RetryPolicy, ServingEndpoint
from forgetd.serving.sinks.vllm import RuntimeLoRA, VllmSink
from forgetd.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.processes import environment, free_port, start, stop, wait_until_ready

pytestmark = pytest.mark.integration

PROMPT = "The capital of France is"
NEVER_SAID = Probe(prompt=PROMPT, completion="Zqxjvbw Kfpgml")  # no model here writes this
FAST = RetryPolicy(attempts=2, backoff_s=0.05)


@dataclass
class VllmLike:
    url: str
    base: str  # the served base model's name
    store: AdapterStore  # the worker's view of the store
    mirror: Path  # the server's view of the store root

    def endpoint(self, api_key: str = ADMIN_TOKEN) -> ServingEndpoint:
        return ServingEndpoint(self.url, api_key=api_key, timeout_s=30, retry=FAST)

    def sink(self, server_root: Path | None = None) -> VllmSink:
        endpoint = self.endpoint()
        return VllmSink(RuntimeLoRA(endpoint, self.store, str(server_root or self.mirror)), endpoint, self.base)

    def publish(self, lineage: str, adapter: Path) -> Manifest:
        manifest = self.store.publish(lineage, adapter, base_model=self.base, method="graddiff",
                                      request_ids=[uuid.uuid4().hex], metrics={})
        # What the server mounts: the version folders, not the pointer.
        versions = self.store.version_path(lineage, manifest.version).parent
        shutil.copytree(versions, self.mirror / lineage / "versions", dirs_exist_ok=True)
        return manifest

    def listed(self) -> dict[str, str]:
        return {name: card["root"] for name, card in self.endpoint().models().items()}

    def answer(self, model: str) -> str:
        return self.endpoint().greedy(model, [PROMPT], [12])[0][1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, random_llama_dir: Path, redis_url: str,
           model_cache_dir: Path) -> Iterator[VllmLike]:
    root = tmp_path_factory.mktemp("vllm-like")
    port = free_port()
    settings = Settings(_env_file=None, data_dir=root / "data", model=str(random_llama_dir),  # type: ignore[call-arg]
                        model_cache_dir=model_cache_dir, redis_url=redis_url, key_prefix=f"t{uuid.uuid4().hex[:10]}")
    env = environment(settings, store_dir=str(root / "mirror"), serve_port=str(port), admin_token=ADMIN_TOKEN)
    process = start("serve", env, root / "serve.log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [process])
        yield VllmLike(f"http://127.0.0.1:{port}", random_llama_dir.name, AdapterStore(root / "store"),
                       root / "mirror")
    finally:
        stop([process])


@pytest.fixture
def lineage() -> str:
    return f"l{uuid.uuid4().hex[:8]}"


def _recalled_by(server: VllmLike, model: str) -> Probe:
    """A probe whose answer ``model`` gives: the first characters of its own greedy continuation."""
    answer = server.answer(model).strip()[:4]
    assert answer, "the test model answered only whitespace"
    return Probe(prompt=PROMPT, completion=answer)


def _canaries(outcome: str, lineage: str) -> float:
    value = REGISTRY.get_sample_value("forgetd_canary_checks_total", {"lineage": lineage, "outcome": outcome})
    return value or 0.0


def test_each_version_loads_under_its_name_and_retires_the_one_before(
        server: VllmLike, lineage: str, adapter_dir: Callable[[int], Path]) -> None:
    sink = server.sink()
    v1 = server.publish(lineage, adapter_dir(1))
    sink.deliver(Delivery(v1, None, [NEVER_SAID]))
    assert server.listed()[f"{lineage}-v1"] == str(server.mirror / lineage / "versions" / "000001")
    assert _canaries("passed", lineage) == 1
    assert server.answer(f"{lineage}-v1") != server.answer(server.base)  # the adapter is live, not the base

    v2 = server.publish(lineage, adapter_dir(2))
    sink.deliver(Delivery(v2, v1, [NEVER_SAID]))
    listed = server.listed()
    assert f"{lineage}-v2" in listed and f"{lineage}-v1" not in listed

    sink.deliver(Delivery(v2, v1, [NEVER_SAID]))  # a redelivery finds it loaded from the same path
    assert f"{lineage}-v2" in server.listed()


def test_a_server_that_lost_the_current_version_gets_it_back_from_a_redelivery(
        server: VllmLike, lineage: str, adapter_dir: Callable[[int], Path]) -> None:
    sink = server.sink()
    v1 = server.publish(lineage, adapter_dir(1))
    sink.deliver(Delivery(v1, None, [NEVER_SAID]))
    # What a vLLM restart does to adapters loaded at run time.
    unloaded = server.endpoint().request("POST", "/v1/unload_lora_adapter", json={"lora_name": f"{lineage}-v1"})
    assert unloaded.status_code == 200 and f"{lineage}-v1" not in server.listed()

    sink.deliver(Delivery(v1, None))  # as keep_current delivers it: no previous version, no canary

    assert f"{lineage}-v1" in server.listed()


def test_a_failed_canary_unloads_the_new_version_and_rolls_the_store_back(
        server: VllmLike, lineage: str, adapter_dir: Callable[[int], Path]) -> None:
    sink = server.sink()
    v1 = server.publish(lineage, adapter_dir(1))
    sink.deliver(Delivery(v1, None, [NEVER_SAID]))
    v2 = server.publish(lineage, adapter_dir(2))
    sink.deliver(Delivery(v2, v1, []))  # loaded without a canary, only to learn what it answers
    recalled = _recalled_by(server, f"{lineage}-v2")
    sink.deliver(Delivery(v1, None, []))  # back to v1, v2 retired: the state before v2's delivery
    assert f"{lineage}-v2" not in server.listed()

    outcome = deliver([sink], server.store, Delivery(v2, v1, [NEVER_SAID, recalled]))

    assert outcome.status == "canary_failed"
    assert "canary: 1 of 2 forget probes still answered (0 allowed)" in outcome.reason
    assert "rolled back to v1" in outcome.reason
    assert recalled.completion not in outcome.reason
    listed = server.listed()
    assert f"{lineage}-v2" not in listed and f"{lineage}-v1" in listed
    assert server.store.current_version(lineage) == 1
    assert _canaries("failed", lineage) == 1


def test_a_name_held_from_another_path_is_never_reused(server: VllmLike, lineage: str, tmp_path: Path,
                                                       adapter_dir: Callable[[int], Path]) -> None:
    v1 = server.publish(lineage, adapter_dir(1))
    server.sink().deliver(Delivery(v1, None, []))
    elsewhere = tmp_path / "same-store-other-path"
    elsewhere.symlink_to(server.mirror)  # resolves to the same folder: the server accepts it

    with pytest.raises(DeliveryError, match="a served name is never reused"):
        server.sink(server_root=elsewhere).deliver(Delivery(v1, None, []))


def test_refusals_and_an_unreachable_server_are_delivery_errors(
        server: VllmLike, lineage: str, adapter_dir: Callable[[int], Path]) -> None:
    v1 = server.publish(lineage, adapter_dir(1))
    wrong_key = server.endpoint(api_key="not-the-admin-token")
    with pytest.raises(DeliveryError, match="load refused: HTTP 401"):
        VllmSink(RuntimeLoRA(wrong_key, server.store, str(server.mirror)), wrong_key).deliver(Delivery(v1, None))

    gone = ServingEndpoint(f"http://127.0.0.1:{free_port()}", retry=FAST)
    with pytest.raises(DeliveryError, match="ConnectError after 2 attempts"):
        VllmSink(RuntimeLoRA(gone, server.store, str(server.mirror)), gone).deliver(Delivery(v1, None))
    assert f"{lineage}-v1" not in server.listed()


def test_the_canary_error_names_counts_only(server: VllmLike, lineage: str,
                                            adapter_dir: Callable[[int], Path]) -> None:
    v1 = server.publish(lineage, adapter_dir(1))
    sink = server.sink()
    sink.deliver(Delivery(v1, None, []))
    recalled = _recalled_by(server, f"{lineage}-v1")
    sink.deliver(Delivery(server.publish(lineage, adapter_dir(2)), v1, []))  # v1 retired

    with pytest.raises(CanaryFailedError) as failed:
        sink.deliver(Delivery(v1, None, [recalled]))

    assert failed.value.recalled == 1 and failed.value.asked == 1
    assert "the base model recalls" in str(failed.value)
    assert recalled.completion not in str(failed.value) and PROMPT not in str(failed.value)

