"""The small interface between :class:`~adapters_store.store.AdapterStore` and where its bytes live.

The store keeps every rule (names, manifests, fencing, parents, history events, verification); a
storage only moves bytes and offers the few atomic steps those rules rest on:

* ``read_state`` / ``write_state``: the lineage's pointer and fence, replaced only if unchanged since
  read (compare-and-set; :class:`StateConflict` otherwise);
* ``new_version`` + ``install_version``: a version number no other writer gets, and a version that
  readers see whole or not at all;
* ``writer_lock``: mutual exclusion where the storage has it (``flock``), else nothing: correctness
  then rests on the compare-and-set alone, and the lock only spares wasted work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from adapters_store.errors import IntegrityError, InvalidNameError, StoreError
from adapters_store.manifest import Manifest
from adapters_store.names import validate_version

# A writer losing compare-and-sets to concurrent writers retries this many times, then gives up.
MAX_RACES = 10
# Seals a version: given {file name: sha256} of the bytes stored, returns the manifest to write last.
Seal = Callable[[dict[str, str]], Manifest]
# Raises IntegrityError unless the directory holds exactly the version's files with their hashes.
Verify = Callable[[Path], None]


class StateConflict(StoreError):
    """The lineage's state changed between a writer's read and its write: another writer got there first."""


@dataclass(frozen=True)
class LineageState:
    """What writers change: the version readers are pointed at and the highest fencing token seen."""

    current: int | None = None
    fence: int | None = None


class Storage(Protocol):
    """Where a store's lineages live; see the module docstring for the guarantees each method owes."""

    @property
    def location(self) -> str:
        """Where the store is, for messages (a directory or a URL; never a credential)."""
        ...

    def lineage_candidates(self) -> list[str]:
        """Names at the top of the store that look like lineages; the store keeps those with versions."""
        ...

    def version_numbers(self, lineage: str) -> list[int]:
        """Versions published whole, ascending; [] for an unknown lineage."""
        ...

    def read_manifest(self, lineage: str, version: int) -> bytes:
        """The manifest's bytes; VersionNotFoundError if the version was never published whole."""
        ...

    def read_state(self, lineage: str) -> tuple[LineageState, object]:
        """The lineage's state and an opaque tag to hand back to :meth:`write_state`."""
        ...

    def write_state(self, lineage: str, state: LineageState, tag: object) -> object:
        """Replace the state read with ``tag`` by ``state``, returning the new tag; StateConflict if it
        changed meanwhile."""
        ...

    def writer_lock(self, lineage: str) -> AbstractContextManager[None]:
        """Held around a whole publish or rollback; creates what the lineage needs to be written."""
        ...

    def new_version(self, lineage: str) -> int:
        """A version number above every published one that no other writer will get."""
        ...

    def install_version(self, lineage: str, version: int, sources: list[Path], seal: Seal) -> Manifest:
        """Store the files of ``sources``, then the manifest ``seal`` makes of their hashes, so that the
        version is visible only once complete; return that manifest."""
        ...

    def append_event(self, lineage: str, line: bytes) -> None:
        """Append one history line (``history.event_line``)."""
        ...

    def read_history(self, lineage: str) -> bytes:
        """The history log's bytes; b"" if there is none."""
        ...

    def version_dir(self, lineage: str, version: int, verify: Verify) -> Path:
        """A local directory holding the version's files, passed through ``verify`` (which raises)."""
        ...


def parse_json(lineage: str, name: str, data: bytes) -> Any:
    """A small control object's JSON content, or IntegrityError naming it."""
    try:
        return json.loads(data)
    except ValueError as e:
        raise IntegrityError(lineage, None, name, f"unreadable: {e}") from e


def pointer_value(lineage: str, name: str, data: Any) -> int | None:
    """The version a pointer names (``{"version": n}``); IntegrityError for anything else."""
    try:
        return validate_version(data.get("version") if isinstance(data, dict) else None)
    except InvalidNameError as e:
        raise IntegrityError(lineage, None, name, f"holds {data!r}: {e.reason}") from e


def fence_value(lineage: str, name: str, token: Any) -> int | None:
    """A fence's token (an int >= 0, or None when no writer ever sent one); IntegrityError otherwise."""
    if token is None:
        return None
    if isinstance(token, bool) or not isinstance(token, int) or token < 0:
        raise IntegrityError(lineage, None, name, f"holds {token!r}, not a token")
    return token


def pointer_bytes(version: int | None) -> bytes:
    return (json.dumps({"version": version}) + "\n").encode()
