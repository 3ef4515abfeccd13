"""Names shared by the serving tests (imported by module name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from adapters_store import Manifest

LINEAGE = "default"
PROMPT = "The capital of France is"

Publish = Callable[..., Manifest]


def tamper(path: Path) -> None:
    """Flip the last byte of a published (read-only) file, as a disk fault or an attacker would."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
