"""Several processes publishing to one lineage at once must never share a version number."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from adapters_store import AdapterStore
from tests.adapters_store.conftest import run_in_processes

PROCESSES = 4
PUBLISHES_EACH = 3


def _publish_several(root: Path, source: Path, writer: int) -> None:
    store = AdapterStore(root)
    for i in range(PUBLISHES_EACH):
        store.publish(
            "bot",
            source,
            base_model="tiny",
            method="npo",
            request_ids=[f"w{writer}-r{i}"],
            metrics={"forget_loss": float(i)},
        )


def test_concurrent_publishes_get_unique_consecutive_versions(
    store: AdapterStore, make_adapter: Callable[..., Path]
) -> None:
    exit_codes = run_in_processes(_publish_several, [(store.root, make_adapter(n), n) for n in range(PROCESSES)])
    assert exit_codes == [0] * PROCESSES

    total = PROCESSES * PUBLISHES_EACH
    manifests = store.versions("bot")
    assert [(m.version, m.parent) for m in manifests] == [(v, v - 1 or None) for v in range(1, total + 1)]
    request_ids = sorted(rid for m in manifests for rid in m.request_ids)
    assert request_ids == sorted(f"w{n}-r{i}" for n in range(PROCESSES) for i in range(PUBLISHES_EACH))
    assert store.current_version("bot") == total
    assert [event["version"] for event in store.history("bot")] == list(range(1, total + 1))
    for manifest in manifests:
        store.verified_path("bot", manifest.version)
