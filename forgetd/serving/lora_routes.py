"""vLLM's runtime LoRA management on the embedded engine: ``POST /v1/load_lora_adapter`` and
``POST /v1/unload_lora_adapter``, behind the admin token (``Authorization: Bearer <FORGETD_ADMIN_TOKEN>``).

Same bodies, statuses and wording as vLLM (``VLLM_ALLOW_RUNTIME_LORA_UPDATING``): a plain-text
``Success: ...`` on 200; 400 ``InvalidUserInput`` for a name already served; 404 ``NotFoundError`` for
an unknown name or a path with no adapter. forgetd adds its own refusals: a path outside the adapter
store or a version failing its hashes (400), unloading what a lineage alias serves now (409).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from forgetd.serving.domain import AdapterRequestError
from forgetd.serving.routes import ERRORS, Engine
from forgetd.serving.schemas import LoadLoRAAdapterRequest, UnloadLoRAAdapterRequest

router = APIRouter(tags=["adapters"])
_bearer = HTTPBearer(auto_error=False)
_ADMIN_ERRORS = {**ERRORS, 401: ERRORS[404], 409: ERRORS[404]}


def _require_admin(request: Request,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    expected: bytes = request.app.state.admin_token
    # compare_digest: the time taken does not reveal how much of a guessed token was right.
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise AdapterRequestError(401, "AuthenticationError", "a valid admin bearer token is required")


Admin = Annotated[None, Depends(_require_admin)]


@router.post("/v1/load_lora_adapter", response_class=PlainTextResponse, responses=_ADMIN_ERRORS)
def load_lora_adapter(body: LoadLoRAAdapterRequest, engine: Engine, _: Admin) -> str:
    engine.load_named_adapter(body.lora_name, body.lora_path)
    return f"Success: LoRA adapter '{body.lora_name}' added successfully."


@router.post("/v1/unload_lora_adapter", response_class=PlainTextResponse, responses=_ADMIN_ERRORS)
def unload_lora_adapter(body: UnloadLoRAAdapterRequest, engine: Engine, _: Admin) -> str:
    engine.unload_named_adapter(body.lora_name)
    return f"Success: LoRA adapter '{body.lora_name}' removed successfully."
