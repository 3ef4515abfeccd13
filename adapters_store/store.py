"""``AdapterStore``: immutable, versioned adapter lineages over a :class:`~adapters_store.storage.Storage`.

Every rule lives here, once, for every storage: names, strict manifests, fencing tokens, expected
parents, history events, verification before use. The storage (a local directory,
``adapters_store.local``; an S3-compatible bucket, ``adapters_store.objectstore``) provides the atomic
steps: a compare-and-set of the lineage's pointer and fence, a version number no other writer gets,
a version visible only once whole. A writer that loses a compare-and-set to a concurrent writer is
admitted again against what that writer left: a stale token or a moved parent is then refused.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import EllipsisType
from typing import Any, TypeVar

from adapters_store.errors import (
    IntegrityError,
    ManifestError,
    ParentMismatchError,
    StaleFencingTokenError,
    StoreError,
    VersionNotFoundError,
)
from adapters_store.fsio import sha256_file
from adapters_store.history import event_line, parse_events, utc_now
from adapters_store.layout import MANIFEST_FILE
from adapters_store.local import LocalStorage
from adapters_store.manifest import REQUIRED_FILES, Manifest, field_problems, normalize_fields
from adapters_store.names import validate_file_name, validate_lineage, validate_version
from adapters_store.storage import MAX_RACES, LineageState, StateConflict, Storage

_T = TypeVar("_T")


class AdapterStore:
    """Publish, list, verify and roll back adapter versions; ``AdapterStore(path)`` is a local store."""

    def __init__(self, storage: Storage | str | Path) -> None:
        self._storage: Storage = LocalStorage(storage) if isinstance(storage, str | Path) else storage

    @property
    def location(self) -> str:
        """Where the store is: a directory or a URL."""
        return self._storage.location

    @property
    def root(self) -> Path:
        """Root directory of a local store; StoreError for a remote one, which has no local root."""
        if not isinstance(self._storage, LocalStorage):
            raise StoreError(f"the store at {self.location} is not a local directory")
        return self._storage.root

    # -- writing ----------------------------------------------------------------------------------

    def publish(
        self,
        lineage: str,
        source_dir: Path,
        *,
        base_model: str,
        method: str,
        request_ids: Sequence[str],
        metrics: Mapping[str, float],
        fencing_token: int | None = None,
        extra: Mapping[str, Any] | None = None,
        expected_parent: int | EllipsisType | None = ...,
    ) -> Manifest:
        """Copy the PEFT adapter in ``source_dir`` into the lineage as its next version and make it current.

        ``fencing_token`` is the token of the writer's distributed lock: a token lower than one already
        seen means that writer's lock was lost, so its result is refused (StaleFencingTokenError).
        ``expected_parent`` is the version the writer trained on: if another version became current
        meanwhile the result is refused (ParentMismatchError) rather than silently dropping that version.
        """
        validate_lineage(lineage)
        metadata = _checked_metadata(base_model, method, request_ids, metrics, fencing_token, extra)
        sources = _source_files(Path(source_dir))
        if expected_parent is not None and not isinstance(expected_parent, EllipsisType):
            validate_version(expected_parent)
        with self._storage.writer_lock(lineage):
            return self._retrying(
                lineage, lambda: self._publish_once(lineage, sources, metadata, fencing_token, expected_parent)
            )

    def set_current(self, lineage: str, version: int, *, reason: str) -> None:
        """Point the lineage at an existing, intact version (a rollback), recording why in its history."""
        validate_lineage(lineage)
        if not isinstance(reason, str) or not reason.strip():
            raise StoreError(f"set_current needs a non-empty reason, got {reason!r}")
        self.verified_path(lineage, version)
        with self._storage.writer_lock(lineage):
            previous = self._retrying(lineage, lambda: self._move_pointer(lineage, version))
            self._storage.append_event(
                lineage,
                event_line({"event": "set_current", "version": version, "previous": previous, "reason": reason}),
            )

    # -- reading ----------------------------------------------------------------------------------

    def current_version(self, lineage: str) -> int | None:
        """The version the lineage points at; None while it has none."""
        state, _ = self._storage.read_state(validate_lineage(lineage))
        return state.current

    def current(self, lineage: str) -> Manifest | None:
        """Manifest of the current version; None while the lineage has none."""
        version = self.current_version(lineage)
        if version is None:
            return None
        try:
            return self.manifest(lineage, version)
        except VersionNotFoundError as e:
            raise IntegrityError(lineage, version, "CURRENT", "points to a missing version") from e

    def manifest(self, lineage: str, version: int) -> Manifest:
        """Manifest of one version; VersionNotFoundError if it was never published."""
        data = self._storage.read_manifest(validate_lineage(lineage), validate_version(version))
        return _load_manifest(lineage, version, data)

    def versions(self, lineage: str) -> list[Manifest]:
        """Manifests of every published version, ascending; [] for an unknown lineage."""
        return [self.manifest(lineage, v) for v in self._storage.version_numbers(validate_lineage(lineage))]

    def lineages(self) -> list[str]:
        """Names of the lineages holding at least one version, sorted."""
        return sorted(name for name in self._storage.lineage_candidates() if self._storage.version_numbers(name))

    def history(self, lineage: str) -> list[dict[str, Any]]:
        """Publish and set_current events of the lineage, oldest first."""
        data = self._storage.read_history(validate_lineage(lineage))
        try:
            return parse_events(data)
        except ValueError as e:
            raise IntegrityError(lineage, None, "history.jsonl", f"unreadable: {e}") from e

    def version_path(self, lineage: str, version: int) -> Path:
        """Directory of a version. Local: checked to exist only; serve from :meth:`verified_path` instead.
        Remote: the verified local copy, since a remote version is only ever used downloaded and checked."""
        if isinstance(self._storage, LocalStorage):
            return self._storage.existing_dir(validate_lineage(lineage), validate_version(version))
        return self.verified_path(lineage, version)

    def verified_path(self, lineage: str, version: int) -> Path:
        """Local directory of a version after re-hashing every file against its manifest.

        Raises IntegrityError naming the first file that is missing, unlisted or altered.
        """
        manifest = self.manifest(lineage, version)
        return self._storage.version_dir(lineage, version, lambda path: _verify_files(manifest, path))

    # -- the steps of a write ---------------------------------------------------------------------

    def _publish_once(
        self,
        lineage: str,
        sources: list[Path],
        metadata: dict[str, Any],
        fencing_token: int | None,
        expected_parent: int | EllipsisType | None,
    ) -> Manifest:
        state, tag = self._storage.read_state(lineage)
        parent = _admit(lineage, state, fencing_token, expected_parent)
        fenced = _raise_fence(state, fencing_token)
        if fenced != state:  # the token is seen from now on, even if this publish fails later
            tag = self._storage.write_state(lineage, fenced, tag)
        version = self._storage.new_version(lineage)
        fields = {"lineage": lineage, "version": version, "parent": parent, **metadata}
        manifest = self._storage.install_version(
            lineage, version, sources, lambda files: Manifest(files=files, created_at=utc_now(), **fields)
        )
        self._storage.write_state(lineage, dataclasses.replace(fenced, current=version), tag)
        self._storage.append_event(
            lineage,
            event_line({"event": "publish", "version": version, "previous": parent, "fencing_token": fencing_token}),
        )
        return manifest

    def _move_pointer(self, lineage: str, version: int) -> int | None:
        state, tag = self._storage.read_state(lineage)
        self._storage.write_state(lineage, dataclasses.replace(state, current=version), tag)
        return state.current

    @staticmethod
    def _retrying(lineage: str, attempt: Callable[[], _T]) -> _T:
        """Run ``attempt`` again while it loses a compare-and-set to a concurrent writer (each retry is a
        fresh admission against what that writer left)."""
        for _ in range(MAX_RACES):
            try:
                return attempt()
            except StateConflict:
                continue
        raise StoreError(f"lineage {lineage!r}: lost {MAX_RACES} races in a row to concurrent writers")


def open_store(url: str, *, cache_dir: Path, endpoint_url: str | None = None) -> AdapterStore:
    """The store at ``url``: ``s3://bucket[/prefix]`` (verified copies of versions kept under
    ``cache_dir``; ``endpoint_url`` for an S3-compatible server), or a local directory path."""
    if "://" not in url:
        return AdapterStore(url)
    if not url.startswith("s3://"):
        raise StoreError(f"unsupported store URL {url!r}: give s3://bucket[/prefix] or a directory path")
    from adapters_store.objectstore import ObjectStorage  # fsspec and s3fs only where a bucket is used

    options = {"endpoint_url": endpoint_url} if endpoint_url else {}
    return AdapterStore(ObjectStorage(url, cache_dir, **options))


def _checked_metadata(
    base_model: str,
    method: str,
    request_ids: Sequence[str],
    metrics: Mapping[str, float],
    fencing_token: int | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Manifest fields the caller supplies, validated before any file is touched."""
    fields = normalize_fields(
        {
            "base_model": base_model,
            "method": method,
            "request_ids": request_ids if isinstance(request_ids, str) else list(request_ids),
            "metrics": metrics,
            "fencing_token": fencing_token,
            "extra": {} if extra is None else extra,
        }
    )
    problems = field_problems(fields)
    if problems:
        raise ManifestError(problems)
    return fields


def _source_files(source_dir: Path) -> list[Path]:
    """The files of a PEFT save directory, refusing one that lacks the adapter or holds non-files."""
    if not source_dir.is_dir():
        raise StoreError(f"adapter source {str(source_dir)!r} is not a directory")
    entries = sorted(source_dir.iterdir())
    names = {entry.name for entry in entries}
    missing = [name for name in REQUIRED_FILES if name not in names]
    if missing:
        raise StoreError(f"adapter source {str(source_dir)!r} lacks {missing}")
    not_files = [entry.name for entry in entries if entry.is_symlink() or not entry.is_file()]
    if not_files:
        raise StoreError(f"adapter source {str(source_dir)!r} holds non-plain-file entries {not_files}")
    for entry in entries:
        validate_file_name(entry.name)
    return entries


def _admit(
    lineage: str, state: LineageState, fencing_token: int | None, expected_parent: int | EllipsisType | None
) -> int | None:
    """Check the writer's fencing token and expected parent against the state; return the parent."""
    if fencing_token is not None and state.fence is not None and fencing_token < state.fence:
        raise StaleFencingTokenError(lineage, fencing_token, state.fence)
    if not isinstance(expected_parent, EllipsisType) and expected_parent != state.current:
        raise ParentMismatchError(lineage, expected_parent, state.current)
    return state.current


def _raise_fence(state: LineageState, fencing_token: int | None) -> LineageState:
    if fencing_token is None or (state.fence is not None and fencing_token <= state.fence):
        return state
    return dataclasses.replace(state, fence=fencing_token)


def _load_manifest(lineage: str, version: int, data: bytes) -> Manifest:
    try:
        manifest = Manifest.from_dict(json.loads(data))
    except ValueError as e:  # ValueError covers bad JSON, bad UTF-8 and ManifestError
        raise IntegrityError(lineage, version, MANIFEST_FILE, f"unreadable manifest: {e}") from e
    if (manifest.lineage, manifest.version) != (lineage, version):
        raise IntegrityError(
            lineage, version, MANIFEST_FILE, f"describes {manifest.ref.served_name}, not this version"
        )
    return manifest


def _verify_files(manifest: Manifest, directory: Path) -> None:
    lineage, version = manifest.lineage, manifest.version
    unlisted = sorted({entry.name for entry in directory.iterdir()} - manifest.files.keys() - {MANIFEST_FILE})
    if unlisted:
        raise IntegrityError(lineage, version, unlisted[0], "is not listed in the manifest")
    for name, expected in sorted(manifest.files.items()):
        try:
            actual = sha256_file(directory / name)
        except FileNotFoundError:
            raise IntegrityError(lineage, version, name, "is missing") from None
        except OSError as e:
            raise IntegrityError(lineage, version, name, f"cannot be read: {e}") from e
        if actual != expected:
            raise IntegrityError(lineage, version, name, f"sha256 {actual} is not the manifest's {expected}")
