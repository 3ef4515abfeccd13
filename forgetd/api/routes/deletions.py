"""``/v1/deletions``: accept deletion requests and report on them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from forgetd.api.deps import ApiState, ReaderDep, StateDep, SubmitterDep
from forgetd.api.problems import Problem
from forgetd.api.schemas import AuditEntry, DeletionCreate, DeletionStatus
from forgetd.ledger import DeletionRecord, IdempotencyConflictError, NewRequest, RequestNotFoundError
from forgetd.metrics import REQUESTS_RECEIVED
from forgetd.security.api_keys import Principal, Scope
from forgetd.settings import Settings

router = APIRouter(prefix="/v1/deletions", tags=["deletions"])

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
           description="Client-chosen key: the same key and body always give the same request."),
]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=DeletionStatus,
             responses={401: {}, 403: {}, 413: {}, 422: {}, 429: {}})
def create_deletion(body: DeletionCreate, state: StateDep, caller: SubmitterDep,
                    idempotency_key: IdempotencyKey = None) -> Response:
    _check_limits(body, state.settings)
    new = NewRequest(tenant=caller.tenant, lineage=body.lineage or state.settings.default_lineage,
                     kind=body.kind, payload=body.payload(), idempotency_key=idempotency_key)
    try:
        # Stored and in `received` atomically: from here admission cannot be lost, only delayed.
        record, created = state.inbox.submit(new)
    except IdempotencyConflictError as e:
        REQUESTS_RECEIVED.labels("rejected").inc()
        raise Problem(422, "Idempotency key reused with a different body",
                      f"The key was first used for request {e.request_id}.") from e
    REQUESTS_RECEIVED.labels("accepted" if created else "replayed").inc()
    headers = {"Location": f"/v1/deletions/{record.id}"} | ({} if created else {"Idempotent-Replayed": "true"})
    # Serialised here, once: returning the model would have FastAPI validate it against itself again.
    return Response(DeletionStatus.of(record).model_dump_json(), status.HTTP_202_ACCEPTED, headers,
                    media_type="application/json")


@router.get("/{request_id}", response_model=DeletionStatus, responses={401: {}, 403: {}, 404: {}})
def get_deletion(request_id: str, state: StateDep, caller: ReaderDep) -> DeletionStatus:
    return DeletionStatus.of(find_record(state, request_id, _visible_tenant(caller)))


@router.get("/{request_id}/audit", response_model=list[AuditEntry], responses={401: {}, 403: {}, 404: {}})
def get_audit_trail(request_id: str, state: StateDep, caller: ReaderDep) -> list[AuditEntry]:
    """Every state change of the request, oldest first: ids, states and times only."""
    find_record(state, request_id, _visible_tenant(caller))
    return [AuditEntry.of(entry) for entry in state.ledger.audit_trail(request_id)]


def find_record(state: ApiState, request_id: str, tenant: str | None) -> DeletionRecord:
    """The request, or 404; a tenant sees only its own (``None``: any, for operators)."""
    try:
        record = state.ledger.get(_checked_id(request_id))
    except RequestNotFoundError as e:
        raise Problem(404, "Deletion request not found", str(e)) from e
    if tenant is not None and record.tenant != tenant:
        raise Problem(404, "Deletion request not found")
    return record


def _visible_tenant(caller: Principal) -> str | None:
    """Whose requests the caller may see: its own tenant's, or any for an operator."""
    return None if Scope.ADMIN in caller.scopes else caller.tenant


def _checked_id(request_id: str) -> str:
    if not (len(request_id) == 32 and all(c in "0123456789abcdef" for c in request_id)):
        raise Problem(404, "Deletion request not found", "Request ids are 32 lowercase hex digits.")
    return request_id


def _check_limits(body: DeletionCreate, settings: Settings) -> None:
    """The deployment's limits (settings), beyond the schema's shape: 422 naming the field."""
    errors = []
    for field in ("texts", "probes", "neighbours"):
        if len(getattr(body, field)) > settings.max_texts:
            errors.append({"loc": ["body", field], "msg": f"at most {settings.max_texts} items",
                           "type": "too_long"})
    for i, text in enumerate(body.texts):
        if len(text) > settings.max_text_chars:
            errors.append({"loc": ["body", "texts", str(i)], "msg": f"at most {settings.max_text_chars} characters",
                           "type": "string_too_long"})
    if errors:
        REQUESTS_RECEIVED.labels("rejected").inc()
        raise Problem(422, "Invalid request", "The request exceeds this deployment's limits.", errors=errors)
