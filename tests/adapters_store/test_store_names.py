"""Names that reach the filesystem: lineages, versions and served adapter names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters_store import AdapterRef, AdapterStore, InvalidNameError, StoreError

BAD_LINEAGES = [
    "../x",
    "a/b",
    "a\x00b",
    "A",
    "",
    "x" * 64,
    "a\nb",
    "..",
    ".hidden",
    "-lead",
    "_lead",
    "a b",
    "a\\b",
    "é",
    "a.b",
    "ﬁ",  # NFKC-folds to "fi"
    None,
    7,
    b"bot",
]
GOOD_LINEAGES = ["a", "0", "bot", "support-bot_2", "x" * 63]
BAD_VERSIONS: list[Any] = [0, -1, True, 1.0, "1", None]


def _entry_points(store: AdapterStore, source: Path) -> dict[str, Callable[[Any], object]]:
    """Every public method that takes a lineage, called with the lineage under test."""
    return {
        "publish": lambda lineage: store.publish(
            lineage, source, base_model="m", method="npo", request_ids=[], metrics={}
        ),
        "current_version": store.current_version,
        "current": store.current,
        "versions": store.versions,
        "history": store.history,
        "manifest": lambda lineage: store.manifest(lineage, 1),
        "version_path": lambda lineage: store.version_path(lineage, 1),
        "verified_path": lambda lineage: store.verified_path(lineage, 1),
        "set_current": lambda lineage: store.set_current(lineage, 1, reason="r"),
    }


@pytest.mark.parametrize("lineage", BAD_LINEAGES, ids=repr)
def test_bad_lineage_is_refused_by_every_entry_point(
    store: AdapterStore, make_adapter: Callable[..., Path], lineage: Any
) -> None:
    for name, call in _entry_points(store, make_adapter()).items():
        with pytest.raises(InvalidNameError) as info:
            call(lineage)
        assert info.value.value == lineage, name
        assert repr(lineage) in str(info.value), name
    assert list(store.root.iterdir()) == []


def test_invalid_name_error_is_a_store_error_and_a_value_error() -> None:
    assert issubclass(InvalidNameError, StoreError)
    assert issubclass(InvalidNameError, ValueError)


@pytest.mark.parametrize("lineage", GOOD_LINEAGES)
def test_good_lineage_is_accepted(
    store: AdapterStore, make_adapter: Callable[..., Path], lineage: str
) -> None:
    manifest = store.publish(
        lineage, make_adapter(), base_model="m", method="npo", request_ids=[], metrics={}
    )
    assert manifest.lineage == lineage
    assert store.lineages() == [lineage]


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=repr)
@pytest.mark.parametrize("method", ["manifest", "version_path", "verified_path"])
def test_bad_version_is_refused(store: AdapterStore, version: Any, method: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        getattr(store, method)("bot", version)
    assert info.value.value == version


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=repr)
def test_bad_version_is_refused_by_set_current_and_expected_parent(
    store: AdapterStore, make_adapter: Callable[..., Path], version: Any
) -> None:
    with pytest.raises(InvalidNameError):
        store.set_current("bot", version, reason="r")
    if version is None:
        return  # None is a valid expected_parent: "no version yet"
    with pytest.raises(InvalidNameError):
        store.publish(
            "bot",
            make_adapter(),
            base_model="m",
            method="npo",
            request_ids=[],
            metrics={},
            expected_parent=version,
        )


@pytest.mark.parametrize(
    ("lineage", "version", "served_name"),
    [
        ("bot", 1, "bot-v1"),
        ("support-bot", 12, "support-bot-v12"),
        ("a-v1", 2, "a-v1-v2"),
        ("v", 1000000, "v-v1000000"),
        ("x" * 63, 7, "x" * 63 + "-v7"),
    ],
)
def test_served_name_round_trip(lineage: str, version: int, served_name: str) -> None:
    ref = AdapterRef(lineage, version)
    assert ref.served_name == served_name
    assert AdapterRef.parse(served_name) == ref
    assert hash(AdapterRef.parse(served_name)) == hash(ref)


@pytest.mark.parametrize(
    "served_name",
    ["bot", "bot-v", "bot-v0", "bot-v01", "bot-v-1", "bot-v1.0", "bot-v1 ", "-v1", "Bot-v1", "../x-v1",
     "bot-v1\n", "bot-v²", "x" * 64 + "-v1", "", None, 3],
    ids=repr,
)
def test_bad_served_name_is_refused(served_name: Any) -> None:
    with pytest.raises(InvalidNameError) as info:
        AdapterRef.parse(served_name)
    assert info.value.value == served_name


@pytest.mark.parametrize(("lineage", "version"), [("Bot", 1), ("bot", 0), ("bot", True), ("a/b", 1)])
def test_ref_refuses_bad_parts(lineage: Any, version: Any) -> None:
    with pytest.raises(InvalidNameError):
        AdapterRef(lineage, version)
