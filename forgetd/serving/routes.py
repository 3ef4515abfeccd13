"""HTTP routes of the serving API: validate, call the engine, shape OpenAI-compatible answers.

No torch here: the engine is reached through the torch-free :class:`ServingEngine` protocol.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from forgetd.metrics import COMPLETIONS
from forgetd.serving.domain import (
    CompletionResult,
    GenerationParams,
    NotReadyError,
    ServingEngine,
    UnknownModelError,
)
from forgetd.serving.schemas import (
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    ErrorDetail,
    ErrorResponse,
    Health,
    ModelCard,
    ModelList,
    Usage,
)

router = APIRouter()

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}
# Paths counted in forgetd_completions_total, by their ``endpoint`` label.
_COUNTED_ENDPOINTS = {"/v1/completions": "completions"}


def get_engine(request: Request) -> ServingEngine:
    engine: ServingEngine | None = request.app.state.engine
    if engine is None:
        raise NotReadyError()
    return engine


Engine = Annotated[ServingEngine, Depends(get_engine)]


@router.get("/healthz")
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", responses=_ERRORS)
def readyz(engine: Engine) -> Health:
    return Health(status="ok")


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models", responses=_ERRORS)
def list_models(engine: Engine) -> ModelList:
    cards = [ModelCard(id=m.id, created=m.created, root=m.root, parent=m.parent) for m in engine.models()]
    return ModelList(data=cards)


@router.post("/v1/completions", responses=_ERRORS)
def create_completion(body: CompletionRequest, engine: Engine) -> CompletionResponse:
    params = GenerationParams(
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stop_strings(),
        seed=body.seed,
    )
    return _completion_response(engine.complete(body.model, body.prompts(), params))


def _completion_response(result: CompletionResult) -> CompletionResponse:
    choices = [
        CompletionChoice(index=i, text=c.text, finish_reason=c.finish_reason) for i, c in enumerate(result.completions)
    ]
    usage = Usage(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
    )
    return CompletionResponse(
        id=f"cmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=result.served_name,
        choices=choices,
        usage=usage,
    )


def install_handlers(app: FastAPI) -> None:
    """OpenAI-shaped errors, and the completion counter by status class."""
    app.add_exception_handler(UnknownModelError, _unknown_model)  # type: ignore[arg-type]
    app.add_exception_handler(NotReadyError, _not_ready)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.middleware("http")(_count_completions)


def _error(status: int, message: str, type_: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status)


async def _unknown_model(request: Request, exc: UnknownModelError) -> JSONResponse:
    return _error(404, str(exc), "invalid_request_error", "model", "model_not_found")


async def _not_ready(request: Request, exc: NotReadyError) -> JSONResponse:
    return _error(503, str(exc), "service_unavailable")


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Built from locations and messages only: pydantic's error also carries the input, which may be
    # prompt text, and an error body must not echo it.
    problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
    first_loc = exc.errors()[0]["loc"][1:] if exc.errors() else ()
    param = str(first_loc[0]) if first_loc else None
    return _error(400, "; ".join(problems), "invalid_request_error", param)


async def _count_completions(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    endpoint = _COUNTED_ENDPOINTS.get(request.url.path)
    if endpoint is None:
        return await call_next(request)
    try:
        response = await call_next(request)
    except Exception:
        COMPLETIONS.labels(endpoint, "5xx").inc()
        raise
    COMPLETIONS.labels(endpoint, f"{response.status_code // 100}xx").inc()
    return response
