"""``AdapterRef``: the value object that says which adapter, as vLLM's ``LoRARequest`` does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from adapters_store.errors import InvalidNameError
from adapters_store.names import validate_lineage, validate_version

_SEPARATOR = "-v"
_VERSION_TEXT = re.compile(r"[1-9][0-9]*", re.ASCII)


@dataclass(frozen=True)
class AdapterRef:
    """One published version of one lineage.

    Its served name is immutable and never reused: a serving engine that caches adapters by name can
    never confuse two versions, which is why the version is part of the name rather than an alias.
    """

    lineage: str
    version: int

    def __post_init__(self) -> None:
        validate_lineage(self.lineage)
        validate_version(self.version)

    @property
    def served_name(self) -> str:
        """Name under which a serving engine loads this version, e.g. ``support-bot-v7``."""
        return f"{self.lineage}{_SEPARATOR}{self.version}"

    @classmethod
    def parse(cls, served_name: str) -> AdapterRef:
        """Inverse of :attr:`served_name`; refuses anything it would not produce (e.g. ``x-v07``)."""
        if not isinstance(served_name, str) or _SEPARATOR not in served_name:
            raise InvalidNameError("served name", served_name, "expected '<lineage>-v<version>'")
        lineage, version_text = served_name.rsplit(_SEPARATOR, 1)
        if not _VERSION_TEXT.fullmatch(version_text):
            raise InvalidNameError(
                "served name", served_name, f"version part {version_text!r} is not a positive integer"
            )
        try:
            return cls(lineage, int(version_text))
        except InvalidNameError as e:
            raise InvalidNameError("served name", served_name, e.reason) from e
