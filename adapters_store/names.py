"""Validation of the names that reach the filesystem: lineages, versions and adapter file names.

Lineage names become directory names and parts of served adapter names, so they are restricted to a
small ASCII alphabet that cannot express a path, a hidden file or a case-folding collision.
"""

from __future__ import annotations

import re

from adapters_store.errors import InvalidNameError

LINEAGE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}", re.ASCII)
_VERSION_DIR_PATTERN = re.compile(r"[0-9]{6,}", re.ASCII)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
RESERVED_FILE_NAMES = frozenset({"manifest.json"})


def validate_lineage(lineage: object) -> str:
    """Return ``lineage`` if it is a valid lineage name, else raise InvalidNameError carrying it."""
    if not isinstance(lineage, str):
        raise InvalidNameError("lineage", lineage, f"must be a str, got {type(lineage).__name__}")
    if not LINEAGE_PATTERN.fullmatch(lineage):
        raise InvalidNameError(
            "lineage", lineage, f"must match {LINEAGE_PATTERN.pattern!r} (lower case, at most 63 chars)"
        )
    return lineage


def validate_version(version: object) -> int:
    """Return ``version`` if it is a positive int (bool refused), else raise InvalidNameError."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidNameError("version", version, f"must be an int, got {type(version).__name__}")
    if version < 1:
        raise InvalidNameError("version", version, "must be at least 1")
    return version


def validate_file_name(name: object) -> str:
    """Return ``name`` if it can be stored as a plain file of a version directory.

    Manifests list file names that are later joined to a directory path, so a name that could escape
    that directory (separators, ``..``) or collide with the store's own files is refused.
    """
    if not isinstance(name, str):
        raise InvalidNameError("file name", name, f"must be a str, got {type(name).__name__}")
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise InvalidNameError("file name", name, "must be a plain file name without path separators")
    if _CONTROL_CHARS.search(name):
        raise InvalidNameError("file name", name, "must not contain control characters")
    if name in RESERVED_FILE_NAMES:
        raise InvalidNameError("file name", name, "is reserved for the store")
    return name


def version_dirname(version: int) -> str:
    """Directory name of a version: zero-padded to 6 digits so listings sort in version order."""
    return f"{validate_version(version):06d}"


def parse_version_dirname(name: str) -> int | None:
    """Version number of a directory name written by :func:`version_dirname`; None for anything else."""
    if not _VERSION_DIR_PATTERN.fullmatch(name):
        return None
    version = int(name)
    if version < 1 or version_dirname(version) != name:
        return None
    return version
