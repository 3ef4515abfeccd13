"""The image: hadolint-clean, and built the way the operators' guide promises (one image for every
role, CUDA base and Python as build arguments, dependencies cached before the source, a non-root
numeric user, a healthcheck that follows the role, no weights or secrets inside)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from types import ModuleType

import pytest

from tests.ops.tools import ROOT, tool

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "ops" / "docker" / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hadolint_passes() -> None:
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cuda_base_and_python_version_are_build_arguments() -> None:
    instructions = _instructions()
    global_args = [rest for keyword, rest in instructions[:instructions.index(
        next(i for i in instructions if i[0] == "FROM"))] if keyword == "ARG"]
    assert any(arg.startswith("CUDA_RUNTIME_IMAGE=nvidia/cuda:") and "runtime" in arg for arg in global_args)
    assert any(arg.startswith("PYTHON_VERSION=") for arg in global_args)
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "multi-stage"
    assert "${PYTHON_VERSION}" in stages[0]
    assert stages[-1].startswith("${CUDA_RUNTIME_IMAGE}")


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    instructions = _instructions()
    copies = [i for i, (keyword, rest) in enumerate(instructions) if keyword == "COPY"]
    source = next(i for i in copies if instructions[i][1].startswith("forgetd"))
    deps = next(i for i, (keyword, rest) in enumerate(instructions) if keyword == "RUN" and "-r pyproject.toml" in rest)
    assert deps < source
    # Only pyproject.toml reaches the dependency layers: a README or source edit keeps them cached.
    assert [instructions[i][1] for i in copies if i < deps] == ["pyproject.toml ./"]


def test_one_non_root_image_for_every_role() -> None:
    instructions = dict(_instructions())  # the last of each keyword: what the final stage runs with
    assert re.fullmatch(r"\d+(:\d+)?", instructions["USER"]), "USER must be a numeric UID"
    assert int(instructions["USER"].split(":")[0]) >= 10000
    assert instructions["ENTRYPOINT"] == '["forgetd"]'
    assert instructions["CMD"] == '["up"]'
    assert "forgetd-healthcheck" in instructions["HEALTHCHECK"]


def test_no_weights_or_secrets_are_baked_in() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r'ARG EXTRA_PACKAGES=""', text), "the demo model is opt-in only"
    for secret in ("FORGETD_API_TOKEN", "FORGETD_ADMIN_TOKEN", "FORGETD_MASTER_KEY", "FORGETD_HMAC_KEY"):
        assert secret not in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[0] == "*" or "*" in ignored, ".dockerignore starts from nothing"
    assert not any(line.startswith("!") and (".env" in line or ".cache" in line) for line in ignored)


@pytest.mark.parametrize(("cmdline", "role"), [
    (b"/opt/forgetd/bin/python\0/opt/forgetd/bin/forgetd\0up\0", "up"),
    (b"/opt/forgetd/bin/python\0/opt/forgetd/bin/forgetd\0worker\0--queues\0forgetd-gpu\0--no-beat\0", "worker"),
    (b"python\0-m\0forgetd.cli\0serve\0", "serve"),
    (b"/opt/forgetd/bin/forgetd\0\0", None),
    (b"/bin/sh\0-c\0sleep 1\0", None),
])
def test_the_healthcheck_finds_the_role(cmdline: bytes, role: str | None) -> None:
    assert _healthcheck().role_of(cmdline) == role


@pytest.mark.parametrize(("role", "env", "url"), [
    ("api", {}, "http://127.0.0.1:8000/healthz"),
    ("up", {"FORGETD_API_PORT": "9000"}, "http://127.0.0.1:9000/healthz"),
    ("serve", {}, "http://127.0.0.1:8001/healthz"),
    ("worker", {}, "http://127.0.0.1:9400/metrics"),
    ("worker", {"FORGETD_WORKER_METRICS_PORT": "0"}, None),
    ("submit", {}, None),
])
def test_the_healthcheck_probes_the_roles_endpoint(role: str, env: dict[str, str], url: str | None) -> None:
    assert _healthcheck().probe_url(role, env) == url
