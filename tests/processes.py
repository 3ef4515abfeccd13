"""Starting forgetd's real processes (``python -m forgetd.cli ROLE``) for integration tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from forgetd.settings import Settings
from tests.conftest import API_TOKEN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The child's environment: this test's settings as FORGETD_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGETD_")}
    env.update({
        "FORGETD_DATA_DIR": str(settings.data_dir),
        "FORGETD_MODEL_CACHE_DIR": str(settings.models_dir),
        "FORGETD_MODEL": str(settings.model),
        "FORGETD_REDIS_URL": settings.redis_url,
        "FORGETD_KEY_PREFIX": settings.key_prefix,
        "FORGETD_QUEUE_NAME": settings.queue_name,
        "FORGETD_GPU_QUEUE_NAME": settings.gpu_queue_name,
        "FORGETD_API_TOKEN": API_TOKEN,
        "FORGETD_DEVICE": "cpu",
        "FORGETD_WORKER_METRICS_PORT": "0",
    })
    env.update({f"FORGETD_{name.upper()}": value for name, value in extra.items()})
    return env


def start(role: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A forgetd process in a session of its own, so that it and its children (a worker's embedded
    beat) can be signalled together, as a container's processes are."""
    return subprocess.Popen([sys.executable, "-m", "forgetd.cli", role], env=env, start_new_session=True,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the process and every process it started (a pod being killed, not one PID)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        kill_group(process, signal.SIGKILL)  # whatever it left behind


def wait_until_ready(url: str, processes: list[subprocess.Popen[bytes]], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


class RedisServer:
    """A redis-server of the test's own, with an append-only file fsynced on every write."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed (make test installs it)"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def crash(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


def children(pid: int) -> list[int]:
    """The child processes of ``pid``, from Linux /proc (empty once it is gone)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
