"""The embedded sink against a real ``forgetd serve`` process: announce, see the alias move, canary,
and the rollback of the store's pointer when the canary finds a forgotten answer."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from adapters_store import AdapterStore, Manifest
from forgetd.ledger import NewRequest, RequestState, open_ledger
from forgetd.payload import DeletionPayload, Probe
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.delivery import deliver_version
from forgetd.serving.notify import announce_version
from forgetd.serving.sinks import Delivery, DeliveryError, deliver
from forgetd.serving.sinks.embedded import EmbeddedSink
from forgetd.serving.sinks.http import RetryPolicy, ServingEndpoint
from forgetd.settings import Settings
from tests.pipeline.recording import RecordingScheduler
from tests.processes import environment, free_port, start, stop, wait_until_ready

pytestmark = pytest.mark.integration
S = RequestState

PROMPT = "The capital of France is"
NEVER_SAID = Probe(prompt=PROMPT, completion="Zqxjvbw Kfpgml")
FAST = RetryPolicy(attempts=2, backoff_s=0.05)


@dataclass
class Serving:
    url: str
    store: AdapterStore
    base: str
    redis: redis.Redis
    key_prefix: str
    settings: Settings  # a worker's settings for this server and store

    def endpoint(self) -> ServingEndpoint:
        return ServingEndpoint(self.url, timeout_s=30, retry=FAST)

    def sink(self, endpoint: ServingEndpoint | None = None) -> EmbeddedSink:
        def announce(lineage: str, version: int) -> None:
            announce_version(self.redis, self.key_prefix, lineage, version)

        return EmbeddedSink(announce, endpoint or self.endpoint(), timeout_s=20, poll_s=0.1)

    def publish(self, lineage: str, adapter: Path, metrics: dict[str, float] | None = None) -> Manifest:
        return self.store.publish(lineage, adapter, base_model=self.base, method="graddiff",
                                  request_ids=[uuid.uuid4().hex], metrics=metrics or {})

    def alias(self, lineage: str) -> str:
        return str(self.endpoint().models()[lineage]["root"])

    def answer(self, model: str) -> str:
        return self.endpoint().greedy(model, [PROMPT], [12])[0][1]

    def recalled_by(self, model: str) -> Probe:
        """A probe whose answer ``model`` gives: the first characters of its own greedy continuation."""
        answer = self.answer(model).strip()[:4]
        assert answer, "the test model answered only whitespace"
        return Probe(prompt=PROMPT, completion=answer)


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory, random_llama_dir: Path, redis_url: str,
            model_cache_dir: Path) -> Iterator[Serving]:
    root = tmp_path_factory.mktemp("embedded")
    port = free_port()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = Settings(_env_file=None, data_dir=root / "data", model=str(random_llama_dir),  # type: ignore[call-arg]
                        model_cache_dir=model_cache_dir, redis_url=redis_url, key_prefix=prefix,
                        store_dir=root / "store", serving_url=f"http://127.0.0.1:{port}", delivery_attempts=2,
                        delivery_backoff_s=0.05)
    process = start("serve", environment(settings, store_dir=str(root / "store"), serve_port=str(port)),
                    root / "serve.log")
    client = redis.Redis.from_url(redis_url)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [process])
        yield Serving(f"http://127.0.0.1:{port}", AdapterStore(root / "store"), random_llama_dir.name, client, prefix,
                      settings)
    finally:
        stop([process])
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
        client.close()


@pytest.fixture
def lineage() -> str:
    return f"l{uuid.uuid4().hex[:8]}"


def test_delivery_waits_for_the_alias_and_asks_the_canary_through_it(
        serving: Serving, lineage: str, adapter_dir: Callable[[int], Path]) -> None:
    v1 = serving.publish(lineage, adapter_dir(1))

    serving.sink().deliver(Delivery(v1, None, [NEVER_SAID]))

    assert serving.alias(lineage) == f"{lineage}-v1"


def test_a_failed_canary_rolls_the_alias_back_to_the_previous_version(
        serving: Serving, lineage: str, adapter_dir: Callable[[int], Path]) -> None:
    sink = serving.sink()
    v1 = serving.publish(lineage, adapter_dir(1))
    sink.deliver(Delivery(v1, None, []))
    v2 = serving.publish(lineage, adapter_dir(2))
    sink.deliver(Delivery(v2, v1, []))  # served once without a canary, only to learn what it answers
    recalled = serving.recalled_by(lineage)

    outcome = deliver([sink], serving.store, Delivery(v2, v1, [NEVER_SAID, recalled]))

    assert outcome.status == "canary_failed"
    assert outcome.reason == "canary: 1 of 2 forget probes still answered (0 allowed); rolled back to v1"
    assert serving.store.current_version(lineage) == 1
    assert serving.alias(lineage) == f"{lineage}-v1"
    assert serving.store.history(lineage)[-1]["reason"] == f"canary failed for {lineage}-v2"


def test_the_canary_allows_the_share_of_answers_verification_allowed(
        serving: Serving, lineage: str, adapter_dir: Callable[[int], Path]) -> None:
    sink = serving.sink()
    v1 = serving.publish(lineage, adapter_dir(1))
    sink.deliver(Delivery(v1, None, []))
    recalled = serving.recalled_by(lineage)
    # Verified to answer at most 0.3 of its forget probes (what a model that never saw them would guess).
    v2 = serving.publish(lineage, adapter_dir(1), metrics={"forget_recall_limit": 0.3})

    outcome = deliver([sink], serving.store, Delivery(v2, v1, [NEVER_SAID, NEVER_SAID, recalled, NEVER_SAID]))

    assert outcome.status == "delivered", outcome.reason  # 1 of 4 answered, 1 allowed
    assert serving.store.current_version(lineage) == 2 and serving.alias(lineage) == f"{lineage}-v2"


def test_a_version_that_never_shows_up_is_a_delivery_error(
        serving: Serving, lineage: str, adapter_dir: Callable[[int], Path], tmp_path: Path) -> None:
    # Published into another store: the server never sees it, so its alias never moves.
    other = AdapterStore(tmp_path / "elsewhere")
    manifest = other.publish(lineage, adapter_dir(1), base_model=serving.base, method="graddiff",
                             request_ids=["r"], metrics={})
    sink = EmbeddedSink(lambda lineage, version: None, serving.endpoint(), timeout_s=1, poll_s=0.1)

    with pytest.raises(DeliveryError, match=f"alias {lineage} still on None after 1 s"):
        sink.deliver(Delivery(manifest, None, [NEVER_SAID]))

    unreachable = ServingEndpoint(f"http://127.0.0.1:{free_port()}", retry=FAST)
    with pytest.raises(DeliveryError, match="ConnectError after 2 attempts"):
        serving.sink(unreachable).deliver(Delivery(manifest, None, []))


def test_without_a_serving_url_the_announcement_is_the_delivery(
        serving: Serving, lineage: str, adapter_dir: Callable[[int], Path]) -> None:
    seen: list[tuple[str, int]] = []
    v1 = serving.publish(lineage, adapter_dir(3))

    EmbeddedSink(lambda lineage, version: seen.append((lineage, version)), None).deliver(
        Delivery(v1, None, [NEVER_SAID]))

    assert seen == [(lineage, 1)]


def test_the_job_sends_a_batch_whose_served_version_still_answers_to_review(
        serving: Serving, lineage: str, adapter_dir: Callable[[int], Path]) -> None:
    ctx = PipelineContext(serving.settings, serving.redis, open_ledger(serving.settings, serving.redis),
                          serving.store, RecordingScheduler())
    v1 = serving.publish(lineage, adapter_dir(1))
    ctx.sinks[0].deliver(Delivery(v1, None, []))
    v2 = serving.publish(lineage, adapter_dir(2))
    ctx.sinks[0].deliver(Delivery(v2, v1, []))
    recalled = serving.recalled_by(lineage)
    record, _ = ctx.ledger.create(NewRequest("t", lineage, "pii", DeletionPayload(
        texts=["Mira Solberg works as a potter."], probes=[recalled])))
    for state in (S.QUEUED, S.PUBLISHED):  # as the job leaves it once v2 is in the store
        ctx.ledger.transition(record.id, state)

    outcome = deliver_version(ctx, [record.id], v2)

    assert outcome.status == "canary_failed"
    after = ctx.ledger.get(record.id)
    assert after.state is S.NEEDS_REVIEW
    assert after.receipt is not None and after.receipt["adapter_version"] == 2
    assert after.receipt["reason"] == "canary: 1 of 1 forget probes still answered (0 allowed); rolled back to v1"
    assert serving.store.current_version(lineage) == 1 and serving.alias(lineage) == f"{lineage}-v1"
