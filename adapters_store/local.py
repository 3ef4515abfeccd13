"""``LocalStorage``: a store in a local (or network, POSIX) directory, the layout of ``layout.py``.

Writers serialise per lineage on an ``flock``, so the compare-and-set of the state never meets a
concurrent writer here; readers take no lock, because every change a reader can observe is a single
atomic rename (a staged version directory, a replaced pointer or fence file).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adapters_store.errors import IntegrityError, StoreError, VersionNotFoundError
from adapters_store.fsio import (
    TEMP_PREFIX,
    copy_and_hash,
    ensure_dir,
    exclusive_lock,
    fsync_dir,
    make_read_only,
    remove_temp_entries,
    replace_atomically,
    write_new_file,
)
from adapters_store.history import append_event
from adapters_store.layout import MANIFEST_FILE, LineageLayout
from adapters_store.manifest import Manifest
from adapters_store.names import LINEAGE_PATTERN
from adapters_store.storage import (
    LineageState,
    Seal,
    StateConflict,
    Verify,
    fence_value,
    parse_json,
    pointer_bytes,
    pointer_value,
)


class LocalStorage:
    """Lineages under one root directory (created if missing)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def location(self) -> str:
        return str(self.root)

    def lineage_candidates(self) -> list[str]:
        return [e.name for e in self.root.iterdir() if LINEAGE_PATTERN.fullmatch(e.name) and e.is_dir()]

    def version_numbers(self, lineage: str) -> list[int]:
        return self._layout(lineage).version_numbers()

    def read_manifest(self, lineage: str, version: int) -> bytes:
        path = self.existing_dir(lineage, version) / MANIFEST_FILE
        try:
            return path.read_bytes()
        except OSError as e:  # a version directory without its manifest is damaged, not absent
            raise IntegrityError(lineage, version, MANIFEST_FILE, f"unreadable manifest: {e}") from e

    def read_state(self, lineage: str) -> tuple[LineageState, object]:
        layout = self._layout(lineage)
        current = _read_control(lineage, layout.current_file)
        state = LineageState(
            current=None if current is None else pointer_value(lineage, layout.current_file.name, current),
            fence=fence_value(lineage, layout.fence_file.name, _read_control(lineage, layout.fence_file)),
        )
        return state, state  # under the flock the state itself is a sufficient tag

    def write_state(self, lineage: str, state: LineageState, tag: object) -> object:
        layout = self._layout(lineage)
        old, _ = self.read_state(lineage)
        if old != tag:
            raise StateConflict(f"lineage {lineage!r}: state changed from {tag} to {old}")
        if state.fence != old.fence:
            replace_atomically(layout.fence_file, f"{state.fence}\n".encode())
        if state.current != old.current:
            replace_atomically(layout.current_file, pointer_bytes(state.current))
        return state

    @contextmanager
    def writer_lock(self, lineage: str) -> Iterator[None]:
        layout = self._layout(lineage)
        ensure_dir(layout.directory)
        ensure_dir(layout.versions_dir)
        with exclusive_lock(layout.lock_file):
            remove_temp_entries(layout.directory)
            yield

    def new_version(self, lineage: str) -> int:
        return max(self.version_numbers(lineage), default=0) + 1  # unique: called under the flock

    def install_version(self, lineage: str, version: int, sources: list[Path], seal: Seal) -> Manifest:
        """Build the version in a temp directory, then rename it into place; on failure remove the temp
        directory (a hard crash leaves it for the next writer to remove)."""
        layout = self._layout(lineage)
        staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=layout.directory))
        try:
            files = {src.name: copy_and_hash(src, staging / src.name) for src in sources}
            manifest = seal(files)
            write_new_file(staging / MANIFEST_FILE, manifest.to_bytes())
            fsync_dir(staging)
            _install(staging, layout.version_dir(version))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest

    def append_event(self, lineage: str, line: bytes) -> None:
        append_event(self._layout(lineage).history_file, line)

    def read_history(self, lineage: str) -> bytes:
        try:
            return self._layout(lineage).history_file.read_bytes()
        except FileNotFoundError:
            return b""

    def version_dir(self, lineage: str, version: int, verify: Verify) -> Path:
        path = self.existing_dir(lineage, version)
        verify(path)
        return path

    def existing_dir(self, lineage: str, version: int) -> Path:
        """Directory of a version, checked to exist only (not verified)."""
        path = self._layout(lineage).version_dir(version)
        if not path.is_dir():
            raise VersionNotFoundError(lineage, version)
        return path

    def _layout(self, lineage: str) -> LineageLayout:
        return LineageLayout(self.root / lineage)


def _install(staging: Path, final: Path) -> None:
    """Rename the complete staging directory into place; never replaces a published version."""
    if final.exists():
        raise StoreError(f"version directory {str(final)!r} already exists; refusing to overwrite it")
    os.rename(staging, final)
    fsync_dir(final.parent)
    fsync_dir(staging.parent)
    make_read_only(final)


def _read_control(lineage: str, path: Path) -> object:
    """A small JSON control file's content; None if it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IntegrityError(lineage, None, path.name, f"unreadable: {e}") from e
    return parse_json(lineage, path.name, data)
