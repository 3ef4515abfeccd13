"""Starting a Celery worker process with forgetd's settings."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

import redis
from celery.signals import beat_embedded_init
from prometheus_client import REGISTRY, start_http_server

from forgetd.metrics import GpuMemoryCollector, RedisUpCollector
from forgetd.pipeline.celery_app import create_celery_app
from forgetd.settings import Settings

logger = logging.getLogger(__name__)


def run_worker(settings: Settings, queues: list[str] | None = None, beat: bool = True) -> None:
    """Run one worker process with the solo pool: one job at a time, and CUDA (if any) is initialised
    in the process that uses it, never in a parent that forks."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_celery_app(settings)
    if settings.worker_metrics_port:
        _register_collectors(settings)
        start_http_server(settings.worker_metrics_port, addr=settings.api_host)
    argv = [
        "worker",
        "--pool=solo",
        f"--queues={','.join(queues or [settings.queue_name, settings.gpu_queue_name])}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv += ["--beat", f"--schedule={settings.data_dir / 'celerybeat-schedule'}"]
        worker_pid = os.getpid()
        beat_embedded_init.connect(lambda **_: _die_with_parent(worker_pid), weak=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.worker_main(argv)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent_pid: int) -> None:
    """Run in the embedded beat's child process: if the worker is killed outright (SIGKILL, the OOM
    killer) the kernel sends the beat SIGTERM, instead of leaving a scheduler running without its
    worker, re-parented to init, that a restarted worker would then double."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        logger.warning("beat: parent-death signal unavailable (errno %d)", ctypes.get_errno())
    if os.getppid() != parent_pid:  # the worker died before the request above took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _register_collectors(settings: Settings) -> None:
    """Scrape-time metrics of this process: Redis reachability (short timeouts, its own client) and
    the GPU memory the job uses."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    REGISTRY.register(RedisUpCollector(answers))
    REGISTRY.register(GpuMemoryCollector())
