"""Typed dependencies of the intake API's routes: state, and who is calling with which scope."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adapters_store import AdapterStore
from forgetd.api.problems import Problem
from forgetd.ledger import Ledger
from forgetd.pipeline.inbox import AdmissionInbox
from forgetd.pipeline.scheduling import TaskScheduler
from forgetd.security.api_keys import ApiKeys, Principal, Scope
from forgetd.security.rate_limit import RateLimiter
from forgetd.settings import Settings

# The tenant of the tokens configured in settings (FORGETD_API_TOKEN, FORGETD_ADMIN_TOKEN).
DEFAULT_TENANT = "default"


@dataclass
class ApiState:
    """Built once in the app's lifespan; routes reach it through the dependencies below."""

    settings: Settings
    ledger: Ledger
    store: AdapterStore
    scheduler: TaskScheduler
    keys: ApiKeys
    rate_limiter: RateLimiter
    inbox: AdmissionInbox

    def principal(self, token: str) -> Principal | None:
        """Who a bearer token belongs to: a settings token, or a tenant's API key."""
        # compare_digest: the time taken does not reveal how much of a guessed token was right.
        if hmac.compare_digest(token.encode(), self.settings.admin_token.get_secret_value().encode()):
            return Principal(DEFAULT_TENANT, frozenset(Scope), "settings-admin")
        if hmac.compare_digest(token.encode(), self.settings.api_token.get_secret_value().encode()):
            return Principal(DEFAULT_TENANT, frozenset({Scope.SUBMIT, Scope.READ}), "settings-api")
        return self.keys.authenticate(token)


# FastAPI runs each sync dependency in the thread pool, and at the intake's request rates a hop costs
# more than the check itself: what needs no I/O is ``async``, and what may read Redis (a tenant key, the
# rate limit) is done in one sync dependency per route.
async def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.forgetd
    return state


_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _principal(state: ApiState, credentials: HTTPAuthorizationCredentials | None, scope: Scope) -> Principal:
    if credentials is None:
        raise Problem(401, "Missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    principal = state.principal(credentials.credentials)
    if principal is None:
        raise Problem(401, "Invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    if scope not in principal.scopes:
        raise Problem(403, "Missing scope", f"This key lacks the {scope.value!r} scope.")
    return principal


def _require(scope: Scope) -> Callable[[ApiState, HTTPAuthorizationCredentials | None], Principal]:
    def authorized(state: Annotated[ApiState, Depends(_state)], credentials: Credentials) -> Principal:
        return _principal(state, credentials, scope)

    return authorized


def _rate_limited_submitter(state: Annotated[ApiState, Depends(_state)], credentials: Credentials) -> Principal:
    principal = _principal(state, credentials, Scope.SUBMIT)
    decision = state.rate_limiter.hit(principal.tenant)
    if not decision.allowed:
        raise Problem(429, "Too many requests", "This tenant's requests per minute are spent.",
                      headers={"Retry-After": str(decision.retry_after_s)})
    return principal


StateDep = Annotated[ApiState, Depends(_state)]
SubmitterDep = Annotated[Principal, Depends(_rate_limited_submitter)]
ReaderDep = Annotated[Principal, Depends(_require(Scope.READ))]
AdminDep = Annotated[Principal, Depends(_require(Scope.ADMIN))]
