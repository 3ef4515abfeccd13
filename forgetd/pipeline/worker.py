"""Starting a Celery worker process with forgetd's settings."""

from __future__ import annotations

import logging

import redis
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
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.worker_main(argv)


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
