"""``AdapterStore``: immutable, versioned adapter lineages in a local directory.

Writers (the pipeline's publish step, an operator's rollback) serialise per lineage on an ``flock``
and are fenced by the token of the distributed lock they hold; readers (serving processes) take no
lock, because every change a reader can observe is a single atomic rename.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import EllipsisType
from typing import Any

from adapters_store.errors import (
    IntegrityError,
    InvalidNameError,
    ManifestError,
    ParentMismatchError,
    StaleFencingTokenError,
    StoreError,
    VersionNotFoundError,
)
from adapters_store.fsio import (
    TEMP_PREFIX,
    copy_and_hash,
    ensure_dir,
    exclusive_lock,
    fsync_dir,
    make_read_only,
    remove_temp_entries,
    replace_atomically,
    sha256_file,
    write_new_file,
)
from adapters_store.history import append_event, read_events, utc_now
from adapters_store.layout import MANIFEST_FILE, LineageLayout
from adapters_store.manifest import REQUIRED_FILES, Manifest, field_problems, normalize_fields
from adapters_store.names import LINEAGE_PATTERN, validate_file_name, validate_lineage, validate_version


class AdapterStore:
    """Publish, list, verify and roll back adapter versions under one root directory."""

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

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
        layout = self._layout(lineage)
        metadata = _checked_metadata(base_model, method, request_ids, metrics, fencing_token, extra)
        sources = _source_files(Path(source_dir))
        if expected_parent is not None and not isinstance(expected_parent, EllipsisType):
            validate_version(expected_parent)
        ensure_dir(layout.directory)
        ensure_dir(layout.versions_dir)
        with exclusive_lock(layout.lock_file):
            remove_temp_entries(layout.directory)
            parent = _admit(lineage, layout, fencing_token, expected_parent)
            version = max(layout.version_numbers(), default=0) + 1
            fields = {"lineage": lineage, "version": version, "parent": parent, **metadata}
            manifest = _stage_and_install(layout, sources, fields)
            replace_atomically(layout.current_file, _pointer_bytes(version))
            append_event(
                layout.history_file,
                {"event": "publish", "version": version, "previous": parent, "fencing_token": fencing_token},
            )
        return manifest

    def set_current(self, lineage: str, version: int, *, reason: str) -> None:
        """Point the lineage at an existing, intact version (a rollback), recording why in its history."""
        layout = self._layout(lineage)
        if not isinstance(reason, str) or not reason.strip():
            raise StoreError(f"set_current needs a non-empty reason, got {reason!r}")
        self.verified_path(lineage, version)
        with exclusive_lock(layout.lock_file):
            previous = _read_pointer(lineage, layout.current_file)
            replace_atomically(layout.current_file, _pointer_bytes(version))
            append_event(
                layout.history_file,
                {"event": "set_current", "version": version, "previous": previous, "reason": reason},
            )

    # -- reading ----------------------------------------------------------------------------------

    def current_version(self, lineage: str) -> int | None:
        """The version the lineage points at; None while it has none."""
        return _read_pointer(lineage, self._layout(lineage).current_file)

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
        return _load_manifest(lineage, version, self.version_path(lineage, version) / MANIFEST_FILE)

    def versions(self, lineage: str) -> list[Manifest]:
        """Manifests of every published version, ascending; [] for an unknown lineage."""
        return [self.manifest(lineage, v) for v in self._layout(lineage).version_numbers()]

    def lineages(self) -> list[str]:
        """Names of the lineages holding at least one version, sorted."""
        entries = (e for e in self._root.iterdir() if LINEAGE_PATTERN.fullmatch(e.name) and e.is_dir())
        return sorted(e.name for e in entries if LineageLayout(e).version_numbers())

    def history(self, lineage: str) -> list[dict[str, Any]]:
        """Publish and set_current events of the lineage, oldest first."""
        history_file = self._layout(lineage).history_file
        try:
            return read_events(history_file)
        except ValueError as e:
            raise IntegrityError(lineage, None, "history.jsonl", f"unreadable: {e}") from e

    def version_path(self, lineage: str, version: int) -> Path:
        """Directory of a version, checked to exist only; serve from :meth:`verified_path` instead."""
        path = self._layout(lineage).version_dir(version)
        if not path.is_dir():
            raise VersionNotFoundError(lineage, version)
        return path

    def verified_path(self, lineage: str, version: int) -> Path:
        """Directory of a version after re-hashing every file against its manifest.

        Raises IntegrityError naming the first file that is missing, unlisted or altered.
        """
        manifest = self.manifest(lineage, version)
        path = self.version_path(lineage, version)
        _verify_files(manifest, path)
        return path

    def _layout(self, lineage: str) -> LineageLayout:
        return LineageLayout(self._root / validate_lineage(lineage))


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
    lineage: str, layout: LineageLayout, fencing_token: int | None, expected_parent: int | EllipsisType | None
) -> int | None:
    """Check the writer's fencing token and expected parent, record the token; return the parent."""
    fence = _read_fence(lineage, layout.fence_file)
    if fencing_token is not None and fence is not None and fencing_token < fence:
        raise StaleFencingTokenError(lineage, fencing_token, fence)
    current = _read_pointer(lineage, layout.current_file)
    if not isinstance(expected_parent, EllipsisType) and expected_parent != current:
        raise ParentMismatchError(lineage, expected_parent, current)
    if fencing_token is not None and (fence is None or fencing_token > fence):
        replace_atomically(layout.fence_file, f"{fencing_token}\n".encode())
    return current


def _stage_and_install(layout: LineageLayout, sources: list[Path], fields: dict[str, Any]) -> Manifest:
    """Build the version in a temp directory, then rename it into place; on failure remove the temp
    directory (a hard crash leaves it for the next publish to remove)."""
    staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=layout.directory))
    try:
        files = {src.name: copy_and_hash(src, staging / src.name) for src in sources}
        manifest = Manifest(files=files, created_at=utc_now(), **fields)
        _write_manifest(staging, manifest)
        _install(staging, layout.version_dir(manifest.version))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _write_manifest(staging: Path, manifest: Manifest) -> None:
    data = json.dumps(manifest.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_new_file(staging / MANIFEST_FILE, data.encode())
    fsync_dir(staging)


def _install(staging: Path, final: Path) -> None:
    """Rename the complete staging directory into place; never replaces a published version."""
    if final.exists():
        raise StoreError(f"version directory {str(final)!r} already exists; refusing to overwrite it")
    os.rename(staging, final)
    fsync_dir(final.parent)
    fsync_dir(staging.parent)
    make_read_only(final)


def _pointer_bytes(version: int) -> bytes:
    return (json.dumps({"version": version}) + "\n").encode()


def _read_json(lineage: str, path: Path) -> Any:
    """A small JSON control file's content; None if it does not exist."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise IntegrityError(lineage, None, path.name, f"unreadable: {e}") from e


def _read_pointer(lineage: str, path: Path) -> int | None:
    """Version named by CURRENT; None if the lineage has never had one."""
    data = _read_json(lineage, path)
    if data is None:
        return None
    try:
        return validate_version(data.get("version") if isinstance(data, dict) else None)
    except InvalidNameError as e:
        raise IntegrityError(lineage, None, path.name, f"holds {data!r}: {e.reason}") from e


def _read_fence(lineage: str, path: Path) -> int | None:
    """Highest fencing token seen; None if no writer ever sent one."""
    token = _read_json(lineage, path)
    if token is None:
        return None
    if isinstance(token, bool) or not isinstance(token, int) or token < 0:
        raise IntegrityError(lineage, None, path.name, f"holds {token!r}, not a token")
    return token


def _load_manifest(lineage: str, version: int, path: Path) -> Manifest:
    try:
        manifest = Manifest.from_dict(json.loads(path.read_bytes()))
    except (OSError, ValueError) as e:  # ValueError covers bad JSON, bad UTF-8 and ManifestError
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
