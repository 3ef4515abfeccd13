"""``/v1/adapters``: the published adapter versions of a lineage, and rolling a lineage back (admin)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from adapters_store import IntegrityError, InvalidNameError, VersionNotFoundError
from forgetd.api.deps import AdminDep, ReaderDep, StateDep
from forgetd.api.problems import Problem
from forgetd.api.schemas import AdapterVersion, LineageAdapters
from forgetd.serving.rollback import roll_back

router = APIRouter(prefix="/v1/adapters", tags=["adapters"])


class Rollback(BaseModel):
    """``POST /v1/adapters/{lineage}/rollback``: the version to serve again, and why (kept in the history)."""

    version: int = Field(ge=1)
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")


@router.get("/{lineage}", response_model=LineageAdapters, responses={401: {}, 404: {}})
def get_lineage(lineage: str, state: StateDep, _: ReaderDep) -> LineageAdapters:
    try:
        manifests = state.store.versions(lineage)
    except InvalidNameError as e:
        raise Problem(404, "Lineage not found", "Not a valid lineage name.") from e
    if not manifests and lineage not in (state.settings.default_lineage, *state.store.lineages()):
        raise Problem(404, "Lineage not found")
    return LineageAdapters(
        lineage=lineage,
        current_version=state.store.current_version(lineage),
        versions=[
            AdapterVersion(version=m.version, served_name=m.ref.served_name, parent=m.parent,
                           base_model=m.base_model, method=m.method, request_ids=list(m.request_ids),
                           metrics=m.metrics, created_at=m.created_at)
            for m in manifests
        ],
    )


@router.post("/{lineage}/rollback", response_model=LineageAdapters, responses={401: {}, 403: {}, 404: {}, 409: {}})
def rollback(lineage: str, body: Rollback, state: StateDep, principal: AdminDep) -> LineageAdapters:
    """Point the lineage at an earlier (or any published) version; serving engines follow within seconds."""
    try:
        roll_back(state.store, state.ledger.redis, state.settings.key_prefix, lineage, body.version,
                  reason=f"{body.reason} (by {principal.key_id})")
    except (InvalidNameError, VersionNotFoundError) as e:
        raise Problem(404, "Version not found", f"Lineage {lineage!r} has no version {body.version}.") from e
    except IntegrityError as e:
        raise Problem(409, "Version failed its integrity check", "Its files no longer match their hashes; "
                      "it cannot be served.") from e
    return get_lineage(lineage, state, principal)
