"""``/v1/adapters``: the published adapter versions of a lineage."""

from __future__ import annotations

from fastapi import APIRouter

from adapters_store import InvalidNameError
from forgetd.api.deps import ReaderDep, StateDep
from forgetd.api.problems import Problem
from forgetd.api.schemas import AdapterVersion, LineageAdapters

router = APIRouter(prefix="/v1/adapters", tags=["adapters"])


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
