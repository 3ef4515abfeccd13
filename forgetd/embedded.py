"""``forgetd up``: every process of a deployment on one machine, supervised together.

Starts a local ``redis-server`` (data and append-only file in the data dir) when nothing answers on
``FORGETD_REDIS_URL``, prepares the base model once, then runs the API, one worker and the serving
engine as child processes. Ctrl-C (or SIGTERM) stops them all; if one dies, the others are stopped
and the exit status says which.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from forgetd.settings import Settings
from forgetd.supervision import wait_for_stop

logger = logging.getLogger("forgetd.up")

ROLES = ("api", "worker", "serve")
STOP_GRACE_S = 30.0


def run_embedded(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    redis_server = _ensure_redis(settings)
    if redis_server is not None:
        children.append(redis_server)
    try:
        _prepare_model(settings)
        # Make sure the generated keys exist before three processes race to create them.
        settings.secret_bytes("master_key")
        settings.secret_bytes("hmac_key")
        env = _child_environment(settings)
        children += [_spawn(role, env) for role in ROLES]
        logger.info("forgetd is up: API http://%s:%d, serving http://%s:%d (Ctrl-C stops)",
                    settings.api_host, settings.api_port, settings.serve_host, settings.serve_port)
        return wait_for_stop(lambda: _first_exited(children))
    finally:
        _stop(children)


def _ensure_redis(settings: Settings) -> subprocess.Popen[bytes] | None:
    if _redis_answers(settings.redis_url):
        return None
    url = urlparse(settings.redis_url)
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"forgetd up: no Redis answers on {url.hostname}:{url.port} and it is not local")
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("forgetd up: no Redis answers and redis-server is not installed "
                         "(apt-get install redis-server, or set FORGETD_REDIS_URL)")
    data = settings.data_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    logger.info("starting redis-server on port %s with its data in %s", url.port or 6379, data)
    process = subprocess.Popen([
        binary, "--port", str(url.port or 6379), "--bind", "127.0.0.1", "--dir", str(data),
        "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", "",
    ], stdout=subprocess.DEVNULL)
    for _ in range(100):
        if _redis_answers(settings.redis_url):
            return process
        time.sleep(0.1)
    process.terminate()
    raise SystemExit("forgetd up: redis-server did not start")


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _prepare_model(settings: Settings) -> Path:
    from forgetd.models import resolve_model_path

    logger.info("preparing base model %r (converted once, then cached in %s)", settings.model,
                settings.models_dir)
    return resolve_model_path(settings.model, settings.models_dir)


def _child_environment(settings: Settings) -> dict[str, str]:
    """This environment, so every child reads the same FORGETD_* settings; and unless told otherwise,
    the worker delivers each version to the local serving engine, whose swap it then sees and checks
    with the canary."""
    env = os.environ.copy()
    if not settings.serving_url:
        host = "127.0.0.1" if settings.serve_host in ("0.0.0.0", "", "::") else settings.serve_host
        env["FORGETD_SERVING_URL"] = f"http://{host}:{settings.serve_port}"
    return env


def _spawn(role: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "forgetd.cli", role], env=env)


def _first_exited(children: list[subprocess.Popen[bytes]]) -> str | None:
    exited = next((child for child in children if child.poll() is not None), None)
    return f"{exited.args!r} exited with status {exited.returncode}" if exited else None


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    # Reverse order: the API stops taking requests first, Redis goes last.
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in reversed(children):
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
