"""The serving process: the FastAPI app around an embedded engine, and its uvicorn runner.

Nothing heavy happens at import: the engine (torch, the base model) is built in the lifespan
start-up hook, then synced from the adapter store, then kept current by the notification subscriber.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import redis
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.concurrency import run_in_threadpool

from forgetd.metrics import GpuMemoryCollector
from forgetd.serving import lora_routes
from forgetd.serving.notify import AdapterSubscriber
from forgetd.serving.routes import install_handlers, router
from forgetd.settings import Settings

if TYPE_CHECKING:
    from forgetd.serving.engine import EmbeddedEngine

logger = logging.getLogger(__name__)


def create_serving_app(settings: Settings, engine: EmbeddedEngine | None = None, *, subscribe: bool = True) -> FastAPI:
    """The OpenAI-compatible serving app.

    ``engine``: use this one instead of building it from ``settings`` (tests, or a process that
    already holds one). ``subscribe``: follow adapter announcements on Redis; the periodic re-sync
    from the store runs with it.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Loading a model and reading the store block: keep them off the event loop.
        ready = engine if engine is not None else await run_in_threadpool(_build_engine, settings)
        await run_in_threadpool(ready.sync_from_store)
        client = redis.Redis.from_url(settings.redis_url, health_check_interval=30) if subscribe else None
        subscriber = None
        if client is not None:
            subscriber = AdapterSubscriber(ready, client, settings.key_prefix)
            subscriber.start()
        app.state.engine = ready
        try:
            yield
        finally:
            app.state.engine = None
            if subscriber is not None:
                subscriber.stop()
            if client is not None:
                client.close()

    app = FastAPI(title="forgetd serving", lifespan=lifespan)
    app.state.engine = None
    app.state.admin_token = settings.admin_token.get_secret_value().encode()
    app.include_router(router)
    app.include_router(lora_routes.router)
    install_handlers(app)
    return app


def run_serving(settings: Settings) -> None:
    """Serve on ``settings.serve_host:serve_port`` until interrupted."""
    REGISTRY.register(GpuMemoryCollector())  # the serving process's own CUDA memory, if it uses CUDA
    uvicorn.run(create_serving_app(settings), host=settings.serve_host, port=settings.serve_port)


def _build_engine(settings: Settings) -> EmbeddedEngine:
    from forgetd.serving.engine import EmbeddedEngine  # torch: imported here, in the start-up hook

    logger.info("loading base model %s for serving", settings.model)
    return EmbeddedEngine.from_settings(settings)
