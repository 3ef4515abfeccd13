"""Atomicity of publish: whatever step fails, readers see no new version or a complete one."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters_store import AdapterStore, Manifest
from adapters_store.fsio import TEMP_PREFIX

Publish = Callable[..., Manifest]
PUBLISH_ARGS: dict[str, Any] = {"base_model": "tiny", "method": "npo", "request_ids": ["r"], "metrics": {}}
CRASH_EXIT_CODE = 17


def _leftovers(store: AdapterStore) -> list[str]:
    return sorted(p.name for p in (store.root / "bot").iterdir() if p.name.startswith(TEMP_PREFIX))


def _publish_and_die_at_rename(root: Path, source: Path) -> None:
    """Child process: a hard crash (no cleanup, no finally) at the rename of the staged version."""

    def die(*_args: object) -> None:
        os._exit(CRASH_EXIT_CODE)

    os.rename = die  # type: ignore[assignment]  # the child's own module; the parent is unaffected
    AdapterStore(root).publish("bot", source, **PUBLISH_ARGS)


def test_failed_rename_leaves_no_version_and_no_temp_dir(
    publish: Publish, store: AdapterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish()

    def fail(*_args: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "rename", fail)
    with pytest.raises(OSError, match="disk on fire"):
        publish()
    monkeypatch.undo()
    assert [m.version for m in store.versions("bot")] == [1]
    assert store.current_version("bot") == 1
    assert _leftovers(store) == []
    assert publish().version == 2


def test_hard_crash_leaves_old_state_and_next_publish_cleans_up(
    publish: Publish, store: AdapterStore, make_adapter: Callable[..., Path]
) -> None:
    publish()
    child = multiprocessing.get_context("fork").Process(
        target=_publish_and_die_at_rename, args=(store.root, make_adapter(1))
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == CRASH_EXIT_CODE
    assert len(_leftovers(store)) == 1, "the crashed writer's staging directory should remain"
    assert [m.version for m in store.versions("bot")] == [1]
    assert store.current_version("bot") == 1
    assert publish().version == 2
    assert _leftovers(store) == []
    store.verified_path("bot", 2)


@pytest.mark.parametrize("step", ["copy_and_hash", "write_new_file", "make_read_only"])
def test_failure_at_any_staging_step_is_all_or_nothing(
    publish: Publish, store: AdapterStore, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    publish()
    import adapters_store.local as store_module

    def fail(*_args: object) -> None:
        raise OSError(f"{step} failed")

    monkeypatch.setattr(store_module, step, fail)
    with pytest.raises(OSError, match=step):
        publish()
    monkeypatch.undo()
    assert store.current_version("bot") == 1
    assert _leftovers(store) == []
    next_version = publish().version
    # a failure after the rename leaves a complete version that is never reused nor made current
    assert next_version == (3 if step == "make_read_only" else 2)
    for manifest in store.versions("bot"):
        store.verified_path("bot", manifest.version)


def test_failed_pointer_write_keeps_old_pointer(
    publish: Publish, store: AdapterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish()

    def fail(*_args: object) -> None:
        raise OSError("replace failed")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="replace failed"):
        publish()
    monkeypatch.undo()
    assert store.current_version("bot") == 1
    assert _leftovers(store) == []
