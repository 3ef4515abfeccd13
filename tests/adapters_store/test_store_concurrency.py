"""Several processes publishing to one lineage at once must never share a version number."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

from adapters_store import AdapterStore

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
    context = multiprocessing.get_context("fork")
    writers = [
        context.Process(target=_publish_several, args=(store.root, make_adapter(n), n))
        for n in range(PROCESSES)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0] * PROCESSES

    total = PROCESSES * PUBLISHES_EACH
    manifests = store.versions("bot")
    assert [(m.version, m.parent) for m in manifests] == [(v, v - 1 or None) for v in range(1, total + 1)]
    request_ids = sorted(rid for m in manifests for rid in m.request_ids)
    assert request_ids == sorted(f"w{n}-r{i}" for n in range(PROCESSES) for i in range(PUBLISHES_EACH))
    assert store.current_version("bot") == total
    assert [event["version"] for event in store.history("bot")] == list(range(1, total + 1))
    for manifest in manifests:
        store.verified_path("bot", manifest.version)
