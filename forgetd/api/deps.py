"""Typed dependencies of the intake API's routes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adapters_store import AdapterStore
from forgetd.api.problems import Problem
from forgetd.ledger import Ledger
from forgetd.pipeline.scheduling import TaskScheduler
from forgetd.settings import Settings

DEFAULT_TENANT = "default"


@dataclass
class ApiState:
    """Built once in the app's lifespan; routes reach it through the dependencies below."""

    settings: Settings
    ledger: Ledger
    store: AdapterStore
    scheduler: TaskScheduler


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.forgetd
    return state


_bearer = HTTPBearer(auto_error=False)


def _tenant(state: Annotated[ApiState, Depends(_state)],
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    _check_token(credentials, state.settings.api_token.get_secret_value())
    return DEFAULT_TENANT


def _check_token(credentials: HTTPAuthorizationCredentials | None, expected: str) -> None:
    if credentials is None:
        raise Problem(401, "Missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    # compare_digest: the time taken does not reveal how much of a guessed token was right.
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Problem(401, "Invalid bearer token", headers={"WWW-Authenticate": "Bearer"})


def _admin(state: Annotated[ApiState, Depends(_state)],
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    _check_token(credentials, state.settings.admin_token.get_secret_value())


StateDep = Annotated[ApiState, Depends(_state)]
AdminDep = Annotated[None, Depends(_admin)]
TenantDep = Annotated[str, Depends(_tenant)]
