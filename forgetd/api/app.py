"""The intake API application: ``create_app(settings)`` and ``run_api(settings)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY

from adapters_store import AdapterStore
from forgetd.api.deps import ApiState
from forgetd.api.limits import BodySizeLimit
from forgetd.api.problems import install_problem_handlers
from forgetd.api.routes import adapters, deletions, health
from forgetd.ledger import Ledger, open_ledger
from forgetd.metrics import RequestStateCollector
from forgetd.pipeline.celery_app import create_celery_app
from forgetd.pipeline.scheduling import CeleryScheduler
from forgetd.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
        ledger = open_ledger(settings, client)
        scheduler = CeleryScheduler(create_celery_app(settings), settings)
        app.state.forgetd = ApiState(settings, ledger, AdapterStore(settings.adapters_dir), scheduler)
        collector = _register_state_collector(ledger)
        try:
            yield
        finally:
            REGISTRY.unregister(collector)
            client.close()

    app = FastAPI(title="forgetd", version="0.1.0", lifespan=lifespan,
                  description="Deletion requests in; verified, served unlearning adapters out.")
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for module in (deletions, adapters, health):
        app.include_router(module.router)
    return app


def _register_state_collector(ledger: Ledger) -> RequestStateCollector:
    collector = RequestStateCollector(lambda: {s.value: n for s, n in ledger.counts_by_state().items()})
    REGISTRY.register(collector)
    return collector


def run_api(settings: Settings) -> None:
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_level="info", access_log=True)
