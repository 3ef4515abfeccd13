"""Errors raised by the adapter store.

Every error carries the values that caused it as attributes, so callers (the pipeline, the serving
process, an operator tool) can act on them without parsing messages. Each class defines
``__reduce__`` so it survives pickling across processes (multiprocessing, Celery result backends).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class StoreError(Exception):
    """Base class: anything the store refuses or cannot do."""


class InvalidNameError(StoreError, ValueError):
    """A lineage, version, file or served name that the store refuses; the value is kept as given."""

    def __init__(self, what: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {what} {value!r}: {reason}")
        self.what = what
        self.value = value
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.value, self.reason))


class ManifestError(StoreError, ValueError):
    """Manifest data that fails strict parsing; ``problems`` lists every problem found, not the first."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid manifest: " + "; ".join(problems))
        self.problems = tuple(problems)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,))


class VersionNotFoundError(StoreError, LookupError):
    """The lineage has no published version with this number."""

    def __init__(self, lineage: str, version: int) -> None:
        super().__init__(f"lineage {lineage!r} has no version {version}")
        self.lineage = lineage
        self.version = version

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.lineage, self.version))


class IntegrityError(StoreError):
    """Stored data does not match what was published: a hash mismatch, a missing or extra file, or an
    unreadable manifest, pointer or fence. ``version`` and ``file`` are None when not applicable."""

    def __init__(self, lineage: str, version: int | None, file: str | None, reason: str) -> None:
        where = f"lineage {lineage!r}"
        if version is not None:
            where += f" version {version}"
        if file is not None:
            where += f" file {file!r}"
        super().__init__(f"{where}: {reason}")
        self.lineage = lineage
        self.version = version
        self.file = file
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.lineage, self.version, self.file, self.reason))


class StaleFencingTokenError(StoreError):
    """A writer whose lock was superseded tried to publish: its token is below the highest one seen."""

    def __init__(self, lineage: str, token: int, highest: int) -> None:
        super().__init__(
            f"lineage {lineage!r}: fencing token {token} is stale, the store has seen token {highest}"
        )
        self.lineage = lineage
        self.token = token
        self.highest = highest

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.lineage, self.token, self.highest))


class ParentMismatchError(StoreError):
    """The writer trained on a parent that is no longer the lineage's current version."""

    def __init__(self, lineage: str, expected: int | None, current: int | None) -> None:
        super().__init__(
            f"lineage {lineage!r}: expected parent version {expected}, but the current version is {current}"
        )
        self.lineage = lineage
        self.expected = expected
        self.current = current

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.lineage, self.expected, self.current))
