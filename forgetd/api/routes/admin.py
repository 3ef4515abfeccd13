"""``/v1/admin``: operators' actions on requests (admin token)."""

from __future__ import annotations

from fastapi import APIRouter

from forgetd.api.deps import AdminDep, StateDep
from forgetd.api.problems import Problem
from forgetd.api.routes.deletions import find_record
from forgetd.api.schemas import DeletionStatus
from forgetd.ledger import IllegalTransitionError
from forgetd.pipeline.replay import replay_request

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/deletions/{request_id}/replay", response_model=DeletionStatus,
             responses={401: {}, 404: {}, 409: {}})
def replay(request_id: str, state: StateDep, _: AdminDep) -> DeletionStatus:
    find_record(state, request_id, tenant=None)
    try:
        return DeletionStatus.of(replay_request(state.ledger, state.scheduler, request_id))
    except IllegalTransitionError as e:
        raise Problem(409, "Request cannot be replayed",
                      f"Only dead_letter and needs_review requests can be replayed; this one is {e.current}.") from e
