"""The intake API application: ``create_app(settings)``; running it is ``forgetd.api.server``."""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

from forgetd.api.deps import ApiState
from forgetd.api.limits import BodySizeLimit
from forgetd.api.problems import install_problem_handlers
from forgetd.api.routes import adapters, admin, deletions, health
from forgetd.ledger import OPEN_STATES, Ledger, open_ledger
from forgetd.metrics import LedgerSnapshot, RedisUpCollector, RequestStateCollector
from forgetd.pipeline.celery_app import create_celery_app
from forgetd.pipeline.inbox import AdmissionInbox
from forgetd.pipeline.scheduling import CeleryScheduler
from forgetd.security.api_keys import ApiKeys
from forgetd.security.rate_limit import RateLimiter
from forgetd.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
        ledger = open_ledger(settings, client)
        scheduler = CeleryScheduler(create_celery_app(settings), settings)
        app.state.forgetd = ApiState(
            settings, ledger, settings.open_adapter_store(), scheduler,
            keys=ApiKeys(client, settings.key_prefix, settings.secret_bytes("hmac_key")),
            rate_limiter=RateLimiter(client, settings.key_prefix, settings.rate_limit_per_minute),
            inbox=AdmissionInbox(ledger, scheduler),
        )
        # Scrapes read the ledger on a client of their own with short timeouts: an unreachable Redis
        # shows as forgetd_redis_up 0 within the scrape timeout instead of failing the scrape.
        metrics_client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        collectors = _register_collectors(Ledger(metrics_client, ledger.prefix, ledger.cipher, ledger.fingerprinter))
        # What is alive after start-up (modules, the app, its clients) never becomes garbage: taken out of
        # the collector's generations, it is not walked again by every collection, which shortens the
        # pauses that make the intake's tail latency.
        gc.freeze()
        try:
            yield
        finally:
            for collector in collectors:
                REGISTRY.unregister(collector)
            metrics_client.close()
            client.close()

    app = FastAPI(title="forgetd", version="0.1.0", lifespan=lifespan,
                  description="Deletion requests in; verified, served unlearning adapters out.")
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for module in (deletions, adapters, admin, health):
        app.include_router(module.router)
    return app


def _register_collectors(ledger: Ledger) -> list[Collector]:
    collectors: list[Collector] = [RedisUpCollector(lambda: _redis_answers(ledger.redis)),
                                   RequestStateCollector(lambda: _ledger_snapshot(ledger))]
    for collector in collectors:
        REGISTRY.register(collector)
    return collectors


def _redis_answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _ledger_snapshot(ledger: Ledger) -> LedgerSnapshot | None:
    try:
        counts = ledger.counts_by_state()
        oldest = ledger.oldest_created_at(OPEN_STATES)
    except redis.RedisError:
        return None
    now = time.time()
    return LedgerSnapshot(counts={state.value: n for state, n in counts.items()},
                          oldest_age_s={state.value: max(0.0, now - t) for state, t in oldest.items()})
