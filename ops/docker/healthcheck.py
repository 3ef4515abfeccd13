#!/usr/bin/env python3
"""The image's HEALTHCHECK: probe the endpoint of whichever role this container runs.

One image serves every role (``forgetd api | worker | serve | up``), so the role is read from the
container's main process (PID 1): the API and ``up`` answer ``/healthz`` on FORGETD_API_PORT, the
serving engine on FORGETD_SERVE_PORT, a worker its ``/metrics`` on FORGETD_WORKER_METRICS_PORT.
Other commands (``submit``, ``doctor``...) have nothing to probe. Standard library only.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

ROLES = ("api", "worker", "serve", "up")


def role_of(cmdline: bytes) -> str | None:
    """The forgetd command in a NUL-separated command line (``.../forgetd worker --no-beat`` or
    ``python -m forgetd.cli serve``); None when it is not forgetd."""
    args = [arg.decode(errors="replace") for arg in cmdline.split(b"\0") if arg]
    for index, arg in enumerate(args):
        if Path(arg).name == "forgetd":
            rest = args[index + 1:]
        elif arg == "-m" and args[index + 1:index + 2] == ["forgetd.cli"]:
            rest = args[index + 2:]
        else:
            continue
        return next((a for a in rest if not a.startswith("-")), None)
    return None


def probe_url(role: str | None, env: dict[str, str]) -> str | None:
    """Where to probe for ``role``; None when there is nothing to probe (or the worker's metrics are off)."""
    if role in ("api", "up"):
        return f"http://127.0.0.1:{env.get('FORGETD_API_PORT', '8000')}/healthz"
    if role == "serve":
        return f"http://127.0.0.1:{env.get('FORGETD_SERVE_PORT', '8001')}/healthz"
    if role == "worker":
        port = env.get("FORGETD_WORKER_METRICS_PORT", "9400")
        return None if port == "0" else f"http://127.0.0.1:{port}/metrics"
    return None


def main() -> int:
    try:
        cmdline = Path("/proc/1/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    url = probe_url(role_of(cmdline), dict(os.environ))
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as e:
        print(f"healthcheck: {url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
