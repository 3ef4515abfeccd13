"""Strict manifest parsing: every problem reported at once, round trips exact."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from adapters_store import AdapterRef, Manifest, ManifestError, StoreError

HASH = "ab" * 32
VALID: dict[str, Any] = {
    "lineage": "bot",
    "version": 2,
    "parent": 1,
    "base_model": "HuggingFaceTB/SmolLM2-135M",
    "method": "npo",
    "request_ids": ["r1", "r2"],
    "metrics": {"forget_loss": 3.5, "retain_loss": 1},
    "files": {"adapter_config.json": HASH, "adapter_model.safetensors": HASH},
    "created_at": "2025-01-02T03:04:05.000006+00:00",
    "fencing_token": 4,
    "extra": {"forgetd_batch": "b-9"},
}
REQUIRED = [
    "lineage", "version", "parent", "base_model", "method", "request_ids", "metrics", "files", "created_at"
]


def _with(**changes: Any) -> dict[str, Any]:
    return VALID | changes


def test_round_trip() -> None:
    manifest = Manifest.from_dict(VALID)
    assert manifest.request_ids == ("r1", "r2")
    assert manifest.metrics == {"forget_loss": 3.5, "retain_loss": 1.0}
    assert manifest.ref == AdapterRef("bot", 2)
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.to_dict() == VALID | {"metrics": {"forget_loss": 3.5, "retain_loss": 1.0}}


def test_optional_fields_default_and_unknown_keys_are_ignored() -> None:
    data = {k: v for k, v in VALID.items() if k not in ("fencing_token", "extra")} | {"future_field": 1}
    manifest = Manifest.from_dict(data)
    assert (manifest.fencing_token, manifest.extra) == (None, {})


def test_every_missing_field_is_listed_at_once() -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.from_dict({})
    assert info.value.problems == tuple(f"missing field {name!r}" for name in REQUIRED)
    for name in REQUIRED:
        assert repr(name) in str(info.value)


def test_missing_and_ill_typed_fields_are_listed_together() -> None:
    data = {k: v for k, v in VALID.items() if k not in ("method", "files")} | {"version": "2", "metrics": []}
    with pytest.raises(ManifestError) as info:
        Manifest.from_dict(data)
    problems = info.value.problems
    assert len(problems) == 4
    for name in ("method", "files", "version", "metrics"):
        assert any(repr(name) in p for p in problems), name


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lineage": "Bot"}, "lineage"),
        ({"lineage": "../etc"}, "lineage"),
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"parent": "1"}, "parent"),
        ({"parent": 2}, "parent"),
        ({"parent": 3}, "parent"),
        ({"base_model": ""}, "base_model"),
        ({"method": None}, "method"),
        ({"request_ids": "r1"}, "request_ids"),
        ({"request_ids": [1]}, "request_ids"),
        ({"metrics": {"loss": "high"}}, "metrics"),
        ({"metrics": {"loss": True}}, "metrics"),
        ({"metrics": {"loss": float("inf")}}, "metrics"),
        ({"metrics": {1: 0.5}}, "metrics"),
        ({"files": {"adapter_config.json": HASH}}, "files"),
        ({"files": VALID["files"] | {"../escape": HASH}}, "files"),
        ({"files": VALID["files"] | {"manifest.json": HASH}}, "files"),
        ({"files": VALID["files"] | {"README.md": "abc"}}, "files"),
        ({"files": VALID["files"] | {"README.md": HASH.upper()}}, "files"),
        ({"files": ["adapter_config.json"]}, "files"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"created_at": "2025-01-02T03:04:05+02:00"}, "created_at"),
        ({"created_at": 1735787045}, "created_at"),
        ({"fencing_token": -1}, "fencing_token"),
        ({"fencing_token": "4"}, "fencing_token"),
        ({"extra": {"x": float("nan")}}, "extra"),
        ({"extra": []}, "extra"),
    ],
)
def test_ill_typed_field_is_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.from_dict(_with(**changes))
    assert len(info.value.problems) == 1
    assert repr(field) in info.value.problems[0]


@pytest.mark.parametrize("data", [[], "manifest", None])
def test_non_object_is_refused(data: Any) -> None:
    with pytest.raises(ManifestError, match="JSON object"):
        Manifest.from_dict(data)


def test_manifest_error_is_a_store_error() -> None:
    assert issubclass(ManifestError, StoreError)


def test_direct_construction_is_validated_too() -> None:
    manifest = Manifest.from_dict(VALID)
    with pytest.raises(ManifestError, match="version"):
        dataclasses.replace(manifest, version=-3)


def test_manifest_does_not_share_input_containers() -> None:
    data = _with(metrics={"loss": 1.0}, files=dict(VALID["files"]))
    manifest = Manifest.from_dict(data)
    data["metrics"]["loss"] = 9.0
    data["files"]["extra.bin"] = HASH
    assert manifest.metrics == {"loss": 1.0}
    assert "extra.bin" not in manifest.files
