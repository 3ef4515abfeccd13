"""Re-hashing before serving: any change to a published version is caught and named."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters_store import (
    AdapterStore,
    IntegrityError,
    InvalidNameError,
    Manifest,
    ManifestError,
    ParentMismatchError,
    StaleFencingTokenError,
    StoreError,
    VersionNotFoundError,
)

Publish = Callable[..., Manifest]


def _make_writable(path: Path) -> None:
    path.parent.chmod(0o755)
    if path.exists():
        path.chmod(0o644)


def _flip_byte(path: Path) -> None:
    _make_writable(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _delete(path: Path) -> None:
    _make_writable(path)
    path.unlink()


def _add_sibling(path: Path) -> None:
    _make_writable(path)
    (path.parent / "evil.bin").write_bytes(b"x")


@pytest.mark.parametrize(
    ("tamper", "target", "named"),
    [
        (_flip_byte, "adapter_model.safetensors", "adapter_model.safetensors"),
        (_flip_byte, "adapter_config.json", "adapter_config.json"),
        (_delete, "adapter_model.safetensors", "adapter_model.safetensors"),
        (_add_sibling, "adapter_config.json", "evil.bin"),
    ],
)
def test_tampering_is_named_by_verified_path(
    publish: Publish,
    store: AdapterStore,
    tamper: Callable[[Path], None],
    target: str,
    named: str,
) -> None:
    publish()
    publish()
    tamper(store.version_path("bot", 1) / target)
    with pytest.raises(IntegrityError) as info:
        store.verified_path("bot", 1)
    assert (info.value.lineage, info.value.version, info.value.file) == ("bot", 1, named)
    assert "'bot'" in str(info.value) and named in str(info.value)
    assert store.verified_path("bot", 2) == store.version_path("bot", 2)


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[]", b"\xff\xfe", json.dumps({"lineage": "bot"}).encode()],
)
def test_unreadable_manifest_is_an_integrity_error(
    publish: Publish, store: AdapterStore, content: bytes
) -> None:
    publish()
    manifest_file = store.version_path("bot", 1) / "manifest.json"
    _make_writable(manifest_file)
    manifest_file.write_bytes(content)
    for read in (store.manifest, store.verified_path):
        with pytest.raises(IntegrityError) as info:
            read("bot", 1)
        assert info.value.file == "manifest.json"


def test_manifest_of_another_version_is_refused(publish: Publish, store: AdapterStore) -> None:
    publish()
    publish()
    second = (store.version_path("bot", 2) / "manifest.json").read_bytes()
    manifest_file = store.version_path("bot", 1) / "manifest.json"
    _make_writable(manifest_file)
    manifest_file.write_bytes(second)
    with pytest.raises(IntegrityError, match="bot-v2"):
        store.manifest("bot", 1)


@pytest.mark.parametrize("content", [b"garbage", b"1", b'{"version": 0}', b'{"version": "1"}', b"{}"])
def test_corrupt_pointer_is_an_integrity_error(publish: Publish, store: AdapterStore, content: bytes) -> None:
    publish()
    (store.root / "bot" / "CURRENT").write_bytes(content)
    with pytest.raises(IntegrityError) as info:
        store.current_version("bot")
    assert info.value.file == "CURRENT"


def test_pointer_to_missing_version_is_an_integrity_error(publish: Publish, store: AdapterStore) -> None:
    publish()
    (store.root / "bot" / "CURRENT").write_text('{"version": 5}')
    with pytest.raises(IntegrityError, match="missing version"):
        store.current("bot")


def test_set_current_refuses_a_tampered_version(publish: Publish, store: AdapterStore) -> None:
    publish()
    publish()
    _flip_byte(store.version_path("bot", 1) / "adapter_model.safetensors")
    with pytest.raises(IntegrityError):
        store.set_current("bot", 1, reason="rollback")
    assert store.current_version("bot") == 2


def test_torn_history_line_is_skipped_then_cut(publish: Publish, store: AdapterStore) -> None:
    publish()
    history = store.root / "bot" / "history.jsonl"
    with history.open("ab") as f:
        f.write(b'{"event": "pub')
    assert [e["version"] for e in store.history("bot")] == [1]
    publish()
    assert [e["version"] for e in store.history("bot")] == [1, 2]


@pytest.mark.parametrize(
    "error",
    [
        InvalidNameError("lineage", "A", "upper case"),
        ManifestError(["missing field 'version'", "'method' must be a non-empty str"]),
        VersionNotFoundError("bot", 3),
        IntegrityError("bot", 2, "adapter_model.safetensors", "sha256 differs"),
        StaleFencingTokenError("bot", 3, 9),
        ParentMismatchError("bot", 1, 2),
    ],
)
def test_errors_survive_pickling(error: StoreError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
