"""``Manifest``: the record written beside every published adapter version.

Parsing is strict, the vLLM way: a manifest missing a required field or holding an ill-typed one is
refused, and every problem is reported at once so a broken file is fixed in one pass. The same checks
run when a Manifest is built directly, so no invalid Manifest exists in memory either.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from adapters_store.errors import InvalidNameError, ManifestError
from adapters_store.names import validate_file_name, validate_lineage, validate_version
from adapters_store.ref import AdapterRef

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
REQUIRED_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}", re.ASCII)
_Check = Callable[[Any], str | None]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_lineage(value: Any) -> str | None:
    try:
        validate_lineage(value)
    except InvalidNameError as e:
        return e.reason
    return None


def _check_version(value: Any) -> str | None:
    try:
        validate_version(value)
    except InvalidNameError as e:
        return e.reason
    return None


def _check_parent(value: Any) -> str | None:
    return None if value is None else _check_version(value)


def _check_text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty str"


def _check_request_ids(value: Any) -> str | None:
    if not isinstance(value, tuple) or not all(isinstance(i, str) and i for i in value):
        return "must be a list of non-empty str"
    return None


def _check_metrics(value: Any) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return "must be an object with str keys"
    bad = sorted(k for k, v in value.items() if not isinstance(v, float) or not math.isfinite(v))
    return f"values must be finite numbers, bad: {bad}" if bad else None


def _file_problem(name: Any, digest: Any) -> str | None:
    try:
        validate_file_name(name)
    except InvalidNameError as e:
        return f"{name!r}: {e.reason}"
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
        return f"{name!r}: hash must be 64 lower-case hex digits"
    return None


def _check_files(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an object mapping file name to sha256"
    problems = [p for p in (_file_problem(k, v) for k, v in value.items()) if p]
    missing = [name for name in REQUIRED_FILES if name not in value]
    if missing:
        problems.append(f"lacks the PEFT files {missing}")
    return "; ".join(problems) or None


def _check_created_at(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be an ISO-8601 UTC timestamp str"
    try:
        offset = datetime.fromisoformat(value).utcoffset()
    except ValueError:
        return f"{value!r} is not ISO-8601"
    return None if offset == timedelta(0) else f"{value!r} is not in UTC"


def _check_fencing_token(value: Any) -> str | None:
    return None if value is None or (_is_int(value) and value >= 0) else "must be null or an int >= 0"


def _check_extra(value: Any) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return "must be an object with str keys"
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        return f"must be JSON-serialisable: {e}"
    return None


_REQUIRED_CHECKS: dict[str, _Check] = {
    "lineage": _check_lineage,
    "version": _check_version,
    "parent": _check_parent,
    "base_model": _check_text,
    "method": _check_text,
    "request_ids": _check_request_ids,
    "metrics": _check_metrics,
    "files": _check_files,
    "created_at": _check_created_at,
}
_OPTIONAL_CHECKS: dict[str, _Check] = {"fencing_token": _check_fencing_token, "extra": _check_extra}
_CHECKS = _REQUIRED_CHECKS | _OPTIONAL_CHECKS


def normalize_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """Copy the known fields of ``data``, turning JSON shapes into the Manifest's types.

    Lists become tuples and int metrics become floats; anything else is kept as is for the checks to
    judge. Containers are copied so a Manifest never shares mutable state with its source.
    """
    out = {name: data[name] for name in _CHECKS if name in data}
    if isinstance(out.get("request_ids"), list | tuple):
        out["request_ids"] = tuple(out["request_ids"])
    if isinstance(out.get("metrics"), Mapping):
        out["metrics"] = {k: float(v) if _is_int(v) else v for k, v in out["metrics"].items()}
    for name in ("files", "extra"):
        if isinstance(out.get(name), Mapping):
            out[name] = dict(out[name])
    return out


def field_problems(fields: Mapping[str, Any]) -> list[str]:
    """Every problem with the (normalised) fields present in ``fields``, including cross-field ones."""
    found = {name: check(fields[name]) for name, check in _CHECKS.items() if name in fields}
    problems = [f"{name!r} {problem}" for name, problem in found.items() if problem]
    parent, version = fields.get("parent"), fields.get("version")
    valid = [name for name, problem in found.items() if problem is None]
    if {"parent", "version"} <= set(valid) and parent is not None and parent >= version:
        problems.append(f"'parent' {parent} must be lower than 'version' {version}")
    return problems


@dataclass(frozen=True)
class Manifest:
    """What one adapter version is: its place in the lineage, what made it, and its files' hashes."""

    lineage: str
    version: int
    parent: int | None
    base_model: str
    method: str
    request_ids: tuple[str, ...]
    metrics: dict[str, float]
    files: dict[str, str]  # file name -> sha256 hex
    created_at: str  # ISO-8601 UTC
    fencing_token: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = field_problems({name: getattr(self, name) for name in _CHECKS})
        if problems:
            raise ManifestError(problems)

    @property
    def ref(self) -> AdapterRef:
        """The value object naming this version."""
        return AdapterRef(self.lineage, self.version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy; :meth:`from_dict` of it gives back an equal Manifest."""
        return {
            "lineage": self.lineage,
            "version": self.version,
            "parent": self.parent,
            "base_model": self.base_model,
            "method": self.method,
            "request_ids": list(self.request_ids),
            "metrics": dict(self.metrics),
            "files": dict(self.files),
            "created_at": self.created_at,
            "fencing_token": self.fencing_token,
            "extra": json.loads(json.dumps(self.extra)),
        }

    def to_bytes(self) -> bytes:
        """The ``manifest.json`` content the store writes: sorted, indented, newline-terminated JSON."""
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n").encode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Parse strictly: ManifestError lists every missing or ill-typed field. Unknown keys are
        ignored so that a reader keeps working with manifests written by a newer store."""
        if not isinstance(data, Mapping):
            raise ManifestError([f"must be a JSON object, got {type(data).__name__}"])
        missing = [f"missing field {name!r}" for name in _REQUIRED_CHECKS if name not in data]
        fields = normalize_fields(data)
        problems = missing + field_problems(fields)
        if problems:
            raise ManifestError(problems)
        return cls(**fields)
