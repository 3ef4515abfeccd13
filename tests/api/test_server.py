"""``forgetd api`` with several processes: each has a listening socket of its own on the one port, every
one answers, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import httpx
import pytest

from forgetd.settings import Settings
from tests.processes import children, environment, free_port, start, stop, wait_until_ready

pytestmark = pytest.mark.integration


def _listening_inodes(pid: int) -> set[str]:
    """Socket inodes the process has open (its listening socket among them)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink()) if fd.is_symlink() else ""
        if target.startswith("socket:"):
            inodes.add(target)
    return inodes


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT") or not Path("/proc/self/fd").exists(),
                    reason="SO_REUSEPORT and Linux /proc")
def test_several_api_processes_each_listen_on_the_port_and_stop_together(settings: Settings,
                                                                          tmp_path: Path) -> None:
    port = free_port()
    api = start("api", environment(settings, api_port=str(port), api_workers="2"), tmp_path / "api.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, [api])
        workers = children(api.pid)
        assert len(workers) >= 2  # the spawn start method may add its resource tracker
        serving = [pid for pid in workers if _listening_inodes(pid)]
        assert len(serving) >= 2
        assert not set.intersection(*(_listening_inodes(pid) for pid in serving))  # a socket each
        for _ in range(20):
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200

        api.send_signal(signal.SIGTERM)
        assert api.wait(timeout=40) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in serving)
    finally:
        stop([api])


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT") or not Path("/proc/self/fd").exists(),
                    reason="SO_REUSEPORT and Linux /proc")
def test_when_one_api_process_dies_the_others_are_stopped(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    api = start("api", environment(settings, api_port=str(port), api_workers="2"), tmp_path / "api.log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [api])
        serving = [pid for pid in children(api.pid) if _listening_inodes(pid)]
        os.kill(serving[0], signal.SIGKILL)

        assert api.wait(timeout=40) == 1
        assert not Path(f"/proc/{serving[1]}").exists()
    finally:
        stop([api])
