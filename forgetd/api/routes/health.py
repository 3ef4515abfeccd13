"""Liveness, readiness and metrics."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from forgetd.api.deps import StateDep
from forgetd.api.problems import Problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {}})
def readyz(state: StateDep) -> dict[str, str]:
    try:
        state.ledger.redis.ping()
    except redis.RedisError as e:
        raise Problem(503, "Not ready", f"Redis unreachable: {type(e).__name__}") from e
    return {"status": "ready"}


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
