"""The API process and the CLI stay light: importing them loads no torch (STYLE.md, thin routes)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["forgetd.api.app", "forgetd.serving.routes", "forgetd.cli", "forgetd.client",
                                    "adapters_store"])
def test_importing_does_not_load_torch(module: str) -> None:
    code = f"import sys, {module}; print(sorted({{'torch', 'transformers', 'peft'}} & set(sys.modules)))"

    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert loaded.strip() == "[]"
