"""Publishing, reading, fencing, optimistic concurrency and rollback on one process."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from adapters_store import (
    AdapterRef,
    AdapterStore,
    Manifest,
    ManifestError,
    ParentMismatchError,
    StaleFencingTokenError,
    StoreError,
    VersionNotFoundError,
)

Publish = Callable[..., Manifest]


def test_empty_store_has_nothing(store: AdapterStore) -> None:
    assert store.lineages() == []
    assert store.versions("bot") == []
    assert store.current_version("bot") is None
    assert store.current("bot") is None
    assert store.history("bot") == []


def test_root_is_created(tmp_path: Path) -> None:
    AdapterStore(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


def test_lineages_ignores_strays(publish: Publish, store: AdapterStore) -> None:
    publish()
    (store.root / "notes").write_text("a file named like a lineage")
    (store.root / "empty").mkdir()
    (store.root / "Upper").mkdir()
    assert store.lineages() == ["bot"]


def test_publish_then_read_back(store: AdapterStore, make_adapter: Callable[..., Path]) -> None:
    source = make_adapter()
    published = store.publish(
        "bot",
        source,
        base_model="tiny",
        method="npo",
        request_ids=("r1", "r2"),
        metrics={"forget_loss": 3, "retain_loss": 0.25},
        fencing_token=7,
        extra={"forgetd_batch": "b1"},
    )
    assert published == store.manifest("bot", 1) == store.current("bot")
    assert (published.version, published.parent, published.fencing_token) == (1, None, 7)
    assert published.request_ids == ("r1", "r2")
    assert published.metrics == {"forget_loss": 3.0, "retain_loss": 0.25}
    assert published.extra == {"forgetd_batch": "b1"}
    assert published.ref == AdapterRef("bot", 1)
    assert datetime.fromisoformat(published.created_at).utcoffset() == timedelta(0)
    assert store.current_version("bot") == 1
    assert store.lineages() == ["bot"]
    path = store.version_path("bot", 1)
    assert path == store.root / "bot" / "versions" / "000001"
    assert sorted(p.name for p in path.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
    ]
    weights = "adapter_model.safetensors"
    assert (path / weights).read_bytes() == (source / weights).read_bytes()
    assert json.loads((path / "manifest.json").read_text()) == published.to_dict()


def test_versions_are_consecutive_with_a_parent_chain(publish: Publish, store: AdapterStore) -> None:
    for seed in range(3):
        publish(request_ids=[f"r{seed}"])
    manifests = store.versions("bot")
    assert [(m.version, m.parent) for m in manifests] == [(1, None), (2, 1), (3, 2)]
    assert store.current_version("bot") == 3
    assert [(e["event"], e["version"], e["previous"]) for e in store.history("bot")] == [
        ("publish", 1, None),
        ("publish", 2, 1),
        ("publish", 3, 2),
    ]


def test_lineages_are_independent_and_sorted(publish: Publish, store: AdapterStore) -> None:
    publish("zeta")
    publish("alpha")
    publish("alpha")
    assert store.lineages() == ["alpha", "zeta"]
    assert store.current_version("alpha") == 2
    assert store.current_version("zeta") == 1


def test_extra_files_are_copied(
    publish: Publish, store: AdapterStore, make_adapter: Callable[..., Path]
) -> None:
    source = make_adapter()
    (source / "README.md").write_text("model card")
    manifest = publish(source=source)
    assert set(manifest.files) == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    assert (store.version_path("bot", 1) / "README.md").read_text() == "model card"


def test_published_files_are_read_only(publish: Publish, store: AdapterStore) -> None:
    publish()
    path = store.version_path("bot", 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o555
    for entry in path.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o444, entry.name


@pytest.mark.parametrize(
    ("remove", "missing"),
    [
        (["adapter_config.json"], "adapter_config.json"),
        (["adapter_model.safetensors"], "adapter_model.safetensors"),
        (["adapter_config.json", "adapter_model.safetensors"], "adapter_config.json"),
    ],
)
def test_source_without_peft_files_is_refused(
    publish: Publish, store: AdapterStore, make_adapter: Callable[..., Path], remove: list[str], missing: str
) -> None:
    source = make_adapter()
    for name in remove:
        (source / name).unlink()
    with pytest.raises(StoreError, match=missing):
        publish(source=source)
    assert store.versions("bot") == []


@pytest.mark.parametrize("kind", ["subdirectory", "symlink", "reserved name", "not a directory"])
def test_odd_sources_are_refused(
    publish: Publish, store: AdapterStore, make_adapter: Callable[..., Path], tmp_path: Path, kind: str
) -> None:
    source = make_adapter()
    if kind == "subdirectory":
        (source / "checkpoint-1").mkdir()
    elif kind == "symlink":
        (source / "link.bin").symlink_to(source / "adapter_config.json")
    elif kind == "reserved name":
        (source / "manifest.json").write_text("{}")
    else:
        source = tmp_path / "nowhere"
    with pytest.raises(StoreError):
        publish(source=source)
    assert store.versions("bot") == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"base_model": ""}, "base_model"),
        ({"method": 3}, "method"),
        ({"request_ids": "r1"}, "request_ids"),
        ({"request_ids": ["ok", ""]}, "request_ids"),
        ({"metrics": {"loss": float("nan")}}, "metrics"),
        ({"metrics": {"loss": "low"}}, "metrics"),
        ({"fencing_token": -1}, "fencing_token"),
        ({"extra": {"blob": object()}}, "extra"),
    ],
)
def test_bad_metadata_is_refused_before_touching_disk(
    publish: Publish, store: AdapterStore, overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(ManifestError, match=field):
        publish(**overrides)
    assert not (store.root / "bot").exists()


def test_metadata_problems_are_listed_together(publish: Publish) -> None:
    with pytest.raises(ManifestError) as info:
        publish(base_model="", method="", metrics={"x": "y"})
    assert len(info.value.problems) == 3


@pytest.mark.parametrize(
    ("tokens", "stale", "fence"),
    [
        ([5, 4], 4, 5),
        ([5, None, 3], 3, 5),
        ([1, 9, 9, 2], 2, 9),
    ],
)
def test_stale_fencing_token_is_refused(
    publish: Publish, store: AdapterStore, tokens: list[int | None], stale: int, fence: int
) -> None:
    for token in tokens[:-1]:
        publish(fencing_token=token)
    with pytest.raises(StaleFencingTokenError) as info:
        publish(fencing_token=tokens[-1])
    assert (info.value.token, info.value.highest, info.value.lineage) == (stale, fence, "bot")
    assert store.current_version("bot") == len(tokens) - 1
    assert (store.root / "bot" / "FENCE").read_text().strip() == str(fence)


def test_equal_token_and_no_token_are_accepted(publish: Publish, store: AdapterStore) -> None:
    publish(fencing_token=3)
    publish(fencing_token=3)
    publish()
    assert store.current_version("bot") == 3
    assert (store.root / "bot" / "FENCE").read_text().strip() == "3"


@pytest.mark.parametrize(
    ("published", "expected_parent", "accepted"),
    [
        (0, None, True),
        (0, 1, False),
        (2, 2, True),
        (2, 1, False),
        (2, None, False),
        (2, 3, False),
    ],
)
def test_expected_parent_must_be_current(
    publish: Publish, store: AdapterStore, published: int, expected_parent: int | None, accepted: bool
) -> None:
    for _ in range(published):
        publish()
    if accepted:
        assert publish(expected_parent=expected_parent).parent == expected_parent
        return
    with pytest.raises(ParentMismatchError) as info:
        publish(expected_parent=expected_parent)
    assert (info.value.expected, info.value.current) == (expected_parent, published or None)
    assert len(store.versions("bot")) == published


def test_rollback_moves_pointer_and_is_recorded(publish: Publish, store: AdapterStore) -> None:
    for _ in range(3):
        publish()
    store.set_current("bot", 1, reason="v3 regressed on retain set")
    assert store.current_version("bot") == 1
    assert store.current("bot") == store.manifest("bot", 1)
    last = store.history("bot")[-1]
    assert (last["event"], last["version"], last["previous"]) == ("set_current", 1, 3)
    assert last["reason"] == "v3 regressed on retain set"
    assert "at" in last
    # the next version takes a fresh number and descends from the rolled-back-to version
    assert publish().version == 4
    assert [(m.version, m.parent) for m in store.versions("bot")][-1] == (4, 1)


@pytest.mark.parametrize("version", [2, 99])
def test_set_current_refuses_missing_version(publish: Publish, store: AdapterStore, version: int) -> None:
    publish()
    with pytest.raises(VersionNotFoundError):
        store.set_current("bot", version, reason="rollback")
    assert store.current_version("bot") == 1


@pytest.mark.parametrize("reason", ["", "   "])
def test_set_current_needs_a_reason(publish: Publish, store: AdapterStore, reason: str) -> None:
    publish()
    with pytest.raises(StoreError, match="reason"):
        store.set_current("bot", 1, reason=reason)


@pytest.mark.parametrize("version", [1, 2])
def test_missing_versions_are_not_found(publish: Publish, store: AdapterStore, version: int) -> None:
    if version == 2:
        publish()
    with pytest.raises(VersionNotFoundError) as info:
        store.manifest("bot", version)
    assert (info.value.lineage, info.value.version) == ("bot", version)
    with pytest.raises(LookupError):
        store.version_path("bot", version)
