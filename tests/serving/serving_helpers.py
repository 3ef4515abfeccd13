"""Names shared by the serving tests (imported by module name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from collections.abc import Callable

from adapters_store import Manifest

LINEAGE = "default"
PROMPT = "The capital of France is"

Publish = Callable[..., Manifest]
