"""HTTP routes of the serving API: validate, call the engine, shape OpenAI-compatible answers.

No torch here: the engine is reached through the torch-free :class:`ServingEngine` protocol.

Which version answered: every completion (streamed or not) carries the header ``x-forgetd-served-model:
<lineage>-v<N>`` (or the base id), and a non-streamed body's ``model`` says the same; a chunk's ``model``
too. ``GET /v1/models`` lists a card per lineage alias whose ``root`` is the version the alias means now.
So a client that must know when a new version serves (a post-swap canary) polls ``/v1/models`` until the
alias card's ``root`` is ``<lineage>-v<N>``, then asks through the alias and checks the header: a request
resolved after the alias moved is always answered by the new version (see ``engine.py``).
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
    AdapterRequestError,
    ChatTemplateError,
    CompletionResult,
    NotReadyError,
    ServingEngine,
    UnknownModelError,
)
from forgetd.serving.schemas import (
    ChatChoice,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
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
from forgetd.serving.sse import SERVED_MODEL_HEADER, sse_response

router = APIRouter()

ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}
_STREAMED: dict[int | str, dict[str, object]] = {
    **ERRORS,
    200: {"content": {"text/event-stream": {}}, "description": "JSON, or server-sent events with stream: true."},
}
# Paths counted in forgetd_completions_total, by their ``endpoint`` label.
_COUNTED_ENDPOINTS = {"/v1/completions": "completions", "/v1/chat/completions": "chat_completions"}


def get_engine(request: Request) -> ServingEngine:
    engine: ServingEngine | None = request.app.state.engine
    if engine is None:
        raise NotReadyError()
    return engine


Engine = Annotated[ServingEngine, Depends(get_engine)]


@router.get("/healthz")
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", responses=ERRORS)
def readyz(engine: Engine) -> Health:
    return Health(status="ok")


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models", responses=ERRORS)
def list_models(engine: Engine) -> ModelList:
    cards = [ModelCard(id=m.id, created=m.created, root=m.root, parent=m.parent) for m in engine.models()]
    return ModelList(data=cards)


@router.post("/v1/completions", response_model=CompletionResponse, responses=_STREAMED)
def create_completion(body: CompletionRequest, engine: Engine, response: Response) -> Response | CompletionResponse:
    if body.stream:
        return sse_response(engine.stream(body.model, body.prompts(), body.params()), "completion",
                            include_usage=body.include_usage())
    result = engine.complete(body.model, body.prompts(), body.params())
    response.headers[SERVED_MODEL_HEADER] = result.served_name
    choices = [
        CompletionChoice(index=i, text=c.text, finish_reason=c.finish_reason) for i, c in enumerate(result.completions)
    ]
    return CompletionResponse(id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=result.served_name,
                              choices=choices, usage=_usage(result))


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse, responses=_STREAMED)
def create_chat_completion(
    body: ChatCompletionRequest, engine: Engine, response: Response
) -> Response | ChatCompletionResponse:
    prompt = engine.chat_prompt([m.model_dump() for m in body.messages])
    if body.stream:
        return sse_response(engine.stream(body.model, [prompt], body.params(), templated=True), "chat",
                            include_usage=body.include_usage())
    result = engine.complete(body.model, [prompt], body.params(), templated=True)
    response.headers[SERVED_MODEL_HEADER] = result.served_name
    choices = [
        ChatChoice(index=i, message=ChatCompletionMessage(content=c.text), finish_reason=c.finish_reason)
        for i, c in enumerate(result.completions)
    ]
    return ChatCompletionResponse(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()),
                                  model=result.served_name, choices=choices, usage=_usage(result))


def _usage(result: CompletionResult) -> Usage:
    return Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                 total_tokens=result.prompt_tokens + result.completion_tokens)


def install_handlers(app: FastAPI) -> None:
    """OpenAI-shaped errors, and the completion counter by status class."""
    app.add_exception_handler(UnknownModelError, _unknown_model)  # type: ignore[arg-type]
    app.add_exception_handler(ChatTemplateError, _chat_template)  # type: ignore[arg-type]
    app.add_exception_handler(AdapterRequestError, _adapter_request)  # type: ignore[arg-type]
    app.add_exception_handler(NotReadyError, _not_ready)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.middleware("http")(_count_completions)


def _error(status: int, message: str, type_: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status)


async def _unknown_model(request: Request, exc: UnknownModelError) -> JSONResponse:
    return _error(404, str(exc), "invalid_request_error", "model", "model_not_found")


async def _chat_template(request: Request, exc: ChatTemplateError) -> JSONResponse:
    return _error(400, str(exc), "invalid_request_error", "messages", "chat_template_unavailable")


async def _adapter_request(request: Request, exc: AdapterRequestError) -> JSONResponse:
    # vLLM's error body: the type names the kind of refusal, the code repeats the status.
    return _error(exc.status, str(exc), exc.kind, exc.param, str(exc.status))


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
