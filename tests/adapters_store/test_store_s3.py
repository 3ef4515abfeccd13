"""The store on an S3-compatible bucket: moto's S3 server over a real socket, reached through s3fs.

The behaviours a caller relies on are the local store's own tests, run again here against the bucket
(imported below, so there is one copy of each); the tests written here cover what only a bucket has:
conditional writes standing in for rename and flock, downloads verified into a local cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import s3fs

from adapters_store import (
    AdapterStore,
    IntegrityError,
    Manifest,
    ParentMismatchError,
    StaleFencingTokenError,
    StoreError,
    open_store,
)
from adapters_store.objectstore import ObjectStorage
from adapters_store.storage import StateConflict
from tests.adapters_store.conftest import PUBLISH_DEFAULTS, run_in_processes

# The local store's behavioural tests that use only the public API, collected again in this module,
# where `store` (and so `publish`) is the bucket store.
from tests.adapters_store.test_store_publish import test_empty_store_has_nothing as test_empty_store_has_nothing
from tests.adapters_store.test_store_publish import (
    test_expected_parent_must_be_current as test_expected_parent_must_be_current,
)
from tests.adapters_store.test_store_publish import test_extra_files_are_copied as test_extra_files_are_copied
from tests.adapters_store.test_store_publish import (
    test_lineages_are_independent_and_sorted as test_lineages_are_independent_and_sorted,
)
from tests.adapters_store.test_store_publish import (
    test_missing_versions_are_not_found as test_missing_versions_are_not_found,
)
from tests.adapters_store.test_store_publish import (
    test_rollback_moves_pointer_and_is_recorded as test_rollback_moves_pointer_and_is_recorded,
)
from tests.adapters_store.test_store_publish import (
    test_set_current_refuses_missing_version as test_set_current_refuses_missing_version,
)
from tests.adapters_store.test_store_publish import (
    test_source_without_peft_files_is_refused as test_source_without_peft_files_is_refused,
)
from tests.adapters_store.test_store_publish import (
    test_versions_are_consecutive_with_a_parent_chain as test_versions_are_consecutive_with_a_parent_chain,
)

Publish = Callable[..., Manifest]
WEIGHTS = "adapter_model.safetensors"


@pytest.fixture
def store(s3_url: str, s3_endpoint: str, tmp_path: Path) -> AdapterStore:
    return open_store(s3_url, cache_dir=tmp_path / "cache", endpoint_url=s3_endpoint)


@pytest.fixture
def bucket(s3_endpoint: str) -> s3fs.S3FileSystem:
    """Direct access to the bucket, as another tool (or an attacker) would have."""
    return s3fs.S3FileSystem(endpoint_url=s3_endpoint, use_listings_cache=False)


def _remote(s3_url: str, *parts: str) -> str:
    return "/".join((s3_url.removeprefix("s3://"), *parts))


def _cached_versions(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache").rglob("0*") if p.is_dir())


# -- the emulator -----------------------------------------------------------------------------------


def test_the_server_enforces_conditional_writes(s3_url: str, s3_endpoint: str, tmp_path: Path) -> None:
    """Everything below rests on If-None-Match and If-Match being honoured: check moto does."""
    storage = ObjectStorage(s3_url, tmp_path, endpoint_url=s3_endpoint)
    path = _remote(s3_url, "probe")
    first = storage._put_if(path, b"one", None)
    with pytest.raises(StateConflict):
        storage._put_if(path, b"two", None)  # create-only on an existing object
    second = storage._put_if(path, b"two", first)
    with pytest.raises(StateConflict):
        storage._put_if(path, b"three", first)  # If-Match with a superseded ETag
    assert storage._get(path) == (b"two", second)


def test_a_retried_write_that_had_landed_is_recognised(s3_url: str, s3_endpoint: str, tmp_path: Path) -> None:
    """s3fs retries a PUT whose answer was lost; its condition then fails on the first try's own write."""
    storage = ObjectStorage(s3_url, tmp_path, endpoint_url=s3_endpoint)
    path = _remote(s3_url, "probe")
    created = storage._put_if(path, b"one", None)
    assert storage._put_if(path, b"one", None) == created
    replaced = storage._put_if(path, b"two", created)
    assert storage._put_if(path, b"two", created) == replaced


def test_a_history_append_that_landed_before_a_lost_race_is_not_repeated(
    publish: Publish, store: AdapterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_if = ObjectStorage._put_if
    lost = []

    def land_then_lose(self: ObjectStorage, path: str, data: bytes, etag: object) -> str:
        new_etag = put_if(self, path, data, etag)
        if path.endswith("history.jsonl") and not lost:
            lost.append(path)
            raise StateConflict("the answer to a write that landed was lost")
        return new_etag

    monkeypatch.setattr(ObjectStorage, "_put_if", land_then_lose)
    publish()
    assert lost and [e["version"] for e in store.history("bot")] == [1]


# -- publish and read --------------------------------------------------------------------------------


def test_publish_lays_out_the_bucket_and_verified_path_downloads(
    publish: Publish, store: AdapterStore, bucket: s3fs.S3FileSystem, s3_url: str, make_adapter: Callable[..., Path]
) -> None:
    source = make_adapter()
    manifest = publish(source=source, fencing_token=4)
    version_dir = _remote(s3_url, "bot", "versions", "000001")
    assert sorted(p.rsplit("/", 1)[1] for p in bucket.find(version_dir)) == [
        "adapter_config.json", WEIGHTS, "manifest.json"
    ]
    assert json.loads(bucket.cat_file(f"{version_dir}/manifest.json")) == manifest.to_dict()
    state = json.loads(bucket.cat_file(_remote(s3_url, "bot", "CURRENT")))
    assert (state["version"], state["fence"]) == (1, 4)
    assert store.current("bot") == manifest
    assert store.location == s3_url
    path = store.verified_path("bot", 1)
    assert (path / WEIGHTS).read_bytes() == (source / WEIGHTS).read_bytes()
    assert store.version_path("bot", 1) == path
    with pytest.raises(StoreError, match="not a local directory"):
        _ = store.root


def test_a_version_without_its_manifest_is_absent_and_its_number_never_reused(
    publish: Publish, store: AdapterStore, monkeypatch: pytest.MonkeyPatch, bucket: s3fs.S3FileSystem, s3_url: str
) -> None:
    publish()

    def crash(*_args: object) -> None:
        raise OSError("the writer died before its manifest")

    monkeypatch.setattr(Manifest, "to_bytes", crash)
    with pytest.raises(OSError, match="died"):
        publish()
    monkeypatch.undo()
    assert bucket.exists(_remote(s3_url, "bot", "versions", "000002", WEIGHTS)), "its files were written"
    assert [m.version for m in store.versions("bot")] == [1]
    assert store.current_version("bot") == 1
    assert publish().version == 3
    assert [(e["version"], e["previous"]) for e in store.history("bot")] == [(1, None), (3, 1)]


# -- fencing and racing writers ---------------------------------------------------------------------


def _interleave(monkeypatch: pytest.MonkeyPatch, between: Callable[[], object]) -> None:
    """Run ``between`` once, while the next publish builds its version: after its admission, before its
    pointer move; exactly where a paused writer is overtaken."""
    install = ObjectStorage.install_version
    pending = [between]

    def install_then_interfere(self: ObjectStorage, *args: Any) -> Manifest:
        manifest = install(self, *args)
        if pending:
            pending.pop()()
        return manifest

    monkeypatch.setattr(ObjectStorage, "install_version", install_then_interfere)


def test_stale_fencing_token_is_refused(publish: Publish, store: AdapterStore) -> None:
    publish(fencing_token=5)
    with pytest.raises(StaleFencingTokenError) as info:
        publish(fencing_token=4)
    assert (info.value.token, info.value.highest) == (4, 5)
    assert store.current_version("bot") == 1


def test_a_writer_overtaken_by_a_newer_token_is_refused(
    publish: Publish, store: AdapterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(fencing_token=1)
    _interleave(monkeypatch, lambda: publish(fencing_token=3, request_ids=["newer"]))
    with pytest.raises(StaleFencingTokenError) as info:
        publish(fencing_token=2, request_ids=["stale"])
    assert (info.value.token, info.value.highest) == (2, 3)
    current = store.current("bot")
    assert current is not None and current.request_ids == ("newer",)
    # the stale writer's version is complete but was never made current
    assert [e["fencing_token"] for e in store.history("bot")] == [1, 3]


def test_two_writers_on_the_same_parent_cannot_both_move_the_pointer(
    publish: Publish, store: AdapterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish()
    _interleave(monkeypatch, lambda: publish(expected_parent=1, request_ids=["first"]))
    with pytest.raises(ParentMismatchError) as info:
        publish(expected_parent=1, request_ids=["second"])
    # the paused writer had claimed version 2, so the one that overtook it published version 3
    assert (info.value.expected, info.value.current) == (1, 3)
    assert [(e["version"], e["previous"]) for e in store.history("bot")] == [(1, None), (3, 1)]


def test_a_writer_without_expectations_retries_on_top_of_the_winner(
    publish: Publish, store: AdapterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish()
    _interleave(monkeypatch, lambda: publish(request_ids=["winner"]))
    retried = publish(request_ids=["retried"])
    assert (retried.version, retried.parent) == (4, 3)  # its version 2 lost the race: complete, never current
    assert [(e["version"], e["previous"]) for e in store.history("bot")] == [(1, None), (3, 1), (4, 3)]
    assert [m.version for m in store.versions("bot")] == [1, 2, 3, 4]


def _publish_several(url: str, endpoint: str, cache: Path, source: Path, writer: int, count: int) -> None:
    store = open_store(url, cache_dir=cache, endpoint_url=endpoint)
    for i in range(count):
        store.publish("bot", source, **PUBLISH_DEFAULTS | {"request_ids": [f"w{writer}-r{i}"]})


def test_concurrent_publishers_never_share_a_version_or_a_parent(
    store: AdapterStore, s3_url: str, s3_endpoint: str, tmp_path: Path, make_adapter: Callable[..., Path]
) -> None:
    processes, each = 3, 2
    args = [(s3_url, s3_endpoint, tmp_path / f"c{n}", make_adapter(n), n, each) for n in range(processes)]
    assert run_in_processes(_publish_several, args) == [0] * processes

    events = store.history("bot")
    # the pointer moved once per publish, each time from where the previous move left it
    assert [e["previous"] for e in events] == [None] + [e["version"] for e in events[:-1]]
    assert store.current_version("bot") == events[-1]["version"]
    made_current = {e["version"]: store.manifest("bot", e["version"]) for e in events}
    request_ids = sorted(rid for m in made_current.values() for rid in m.request_ids)
    assert request_ids == sorted(f"w{n}-r{i}" for n in range(processes) for i in range(each))
    assert [made_current[e["version"]].parent for e in events] == [e["previous"] for e in events]
    versions = [m.version for m in store.versions("bot")]
    assert len(versions) == len(set(versions)) >= processes * each
    for version in made_current:
        store.verified_path("bot", version)


# -- downloads ---------------------------------------------------------------------------------------


def _flip_byte(bucket: s3fs.S3FileSystem, path: str) -> None:
    data = bytearray(bucket.cat_file(path))
    data[len(data) // 2] ^= 0xFF
    bucket.pipe_file(path, bytes(data))


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (lambda fs, d: _flip_byte(fs, f"{d}/{WEIGHTS}"), WEIGHTS),
        (lambda fs, d: _flip_byte(fs, f"{d}/adapter_config.json"), "adapter_config.json"),
        (lambda fs, d: fs.rm_file(f"{d}/{WEIGHTS}"), WEIGHTS),
        (lambda fs, d: fs.pipe_file(f"{d}/evil.bin", b"x"), "evil.bin"),
        (lambda fs, d: fs.pipe_file(f"{d}/sub/x.bin", b"x"), "sub/x.bin"),
    ],
)
def test_tampering_in_the_bucket_is_caught_on_download_and_nothing_is_cached(
    publish: Publish,
    store: AdapterStore,
    bucket: s3fs.S3FileSystem,
    s3_url: str,
    tmp_path: Path,
    tamper: Callable[[s3fs.S3FileSystem, str], None],
    named: str,
) -> None:
    publish()
    publish()
    tamper(bucket, _remote(s3_url, "bot", "versions", "000001"))
    with pytest.raises(IntegrityError) as info:
        store.verified_path("bot", 1)
    assert (info.value.lineage, info.value.version, info.value.file) == ("bot", 1, named)
    store.verified_path("bot", 2)
    assert _cached_versions(tmp_path) == ["000002"]
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "cache").rglob("*"))


def test_a_verified_copy_is_reused_and_a_damaged_one_fetched_again(
    publish: Publish, store: AdapterStore, bucket: s3fs.S3FileSystem, s3_url: str, make_adapter: Callable[..., Path]
) -> None:
    source = make_adapter()
    publish(source=source)
    path = store.verified_path("bot", 1)
    remote_config = _remote(s3_url, "bot", "versions", "000001", "adapter_config.json")
    original = bucket.cat_file(remote_config)
    bucket.rm_file(remote_config)
    assert store.verified_path("bot", 1) == path, "the verified copy is used without downloading again"
    bucket.pipe_file(remote_config, original)
    (path / WEIGHTS).write_bytes(b"damaged on the local disk")
    assert store.verified_path("bot", 1) == path
    assert (path / WEIGHTS).read_bytes() == (source / WEIGHTS).read_bytes()


@pytest.mark.parametrize(
    "content", [b"garbage", b"[]", b'{"version": 0, "fence": null}', b'{"version": 1, "fence": -2}']
)
def test_a_corrupt_pointer_object_is_an_integrity_error(
    publish: Publish, store: AdapterStore, bucket: s3fs.S3FileSystem, s3_url: str, content: bytes
) -> None:
    publish()
    bucket.pipe_file(_remote(s3_url, "bot", "CURRENT"), content)
    with pytest.raises(IntegrityError) as info:
        store.current_version("bot")
    assert info.value.file == "CURRENT"


@pytest.mark.parametrize("url", ["s3://", "gs://bucket/x", "s3:///prefix"])
def test_only_s3_urls_name_a_bucket(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="s3://bucket"):
        ObjectStorage(url, tmp_path)


# -- forgetd's settings ------------------------------------------------------------------------------


def test_forgetd_settings_open_the_bucket_store(
    s3_url: str, s3_endpoint: str, tmp_path: Path, make_adapter: Callable[..., Path]
) -> None:
    from forgetd.settings import Settings

    settings = Settings(_env_file=None, data_dir=tmp_path / "data", store_url=s3_url, store_endpoint_url=s3_endpoint)
    settings.open_adapter_store().publish("bot", make_adapter(), **PUBLISH_DEFAULTS)
    reopened = settings.open_adapter_store()
    assert reopened.location == s3_url
    assert reopened.verified_path("bot", 1).is_relative_to(tmp_path / "data" / "store-cache")
    assert not (tmp_path / "data" / "adapters").exists(), "the local store directory is not used"
    local = Settings(_env_file=None, data_dir=tmp_path / "data").open_adapter_store()
    assert local.root == tmp_path / "data" / "adapters"


@pytest.mark.parametrize("url", ["s3://", "s3://Bucket/x", "gs://bucket", "/srv/store", "s3://b"])
def test_forgetd_settings_refuse_what_is_not_a_bucket_url(url: str) -> None:
    from pydantic import ValidationError

    from forgetd.settings import Settings

    with pytest.raises(ValidationError, match="store_url"):
        Settings(_env_file=None, store_url=url)


def test_doctor_checks_the_bucket_not_a_local_folder(s3_url: str, s3_endpoint: str, tmp_path: Path) -> None:
    from forgetd.doctor import check_store
    from forgetd.settings import Settings

    reachable = Settings(_env_file=None, data_dir=tmp_path / "data", store_url=s3_url, store_endpoint_url=s3_endpoint)
    missing = reachable.model_copy(update={"store_url": "s3://no-such-bucket-here/x"})

    assert check_store(reachable).ok and s3_url in check_store(reachable).message
    assert not check_store(missing).ok
    assert not (tmp_path / "data" / "adapters").exists()


def test_a_bucket_store_reaches_vllm_only_through_a_resolver_folder(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from forgetd.settings import Settings

    bucket = {"store_url": "s3://adapters/x", "vllm_url": "http://vllm:8000"}
    with pytest.raises(ValidationError, match="vllm_resolver_dir"):
        Settings(_env_file=None, **bucket)
    assert Settings(_env_file=None, **bucket, vllm_resolver_dir=tmp_path, vllm_served_base="base").vllm_url
