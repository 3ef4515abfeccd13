"""Where a lineage's files live under the store root.

``<root>/<lineage>/versions/<000001>/`` holds one published version (PEFT files + ``manifest.json``);
beside ``versions/`` lie ``CURRENT`` (pointer), ``history.jsonl`` (events), ``FENCE`` (highest fencing
token seen) and ``.lock`` (the writers' flock). Entries named ``.tmp-*`` are a crashed writer's
leftovers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapters_store.names import parse_version_dirname, version_dirname

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class LineageLayout:
    """Paths of one lineage; builds paths only, touches nothing."""

    directory: Path

    @property
    def versions_dir(self) -> Path:
        return self.directory / "versions"

    @property
    def current_file(self) -> Path:
        return self.directory / "CURRENT"

    @property
    def history_file(self) -> Path:
        return self.directory / "history.jsonl"

    @property
    def fence_file(self) -> Path:
        return self.directory / "FENCE"

    @property
    def lock_file(self) -> Path:
        return self.directory / ".lock"

    def version_dir(self, version: int) -> Path:
        return self.versions_dir / version_dirname(version)

    def version_numbers(self) -> list[int]:
        """Published version numbers, ascending; [] when the lineage does not exist."""
        try:
            entries = list(self.versions_dir.iterdir())
        except FileNotFoundError:
            return []
        numbers = (parse_version_dirname(entry.name) for entry in entries if entry.is_dir())
        return sorted(n for n in numbers if n is not None)
