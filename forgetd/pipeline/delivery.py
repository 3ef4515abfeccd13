"""The pipeline's side of delivery: which requests a version carries, the canary's probes, and the
ledger moves that follow a delivery (the sinks themselves are in :mod:`forgetd.serving.sinks`).

A request is ``published`` once its version is in the store and ``completed`` only once that version
(or a descendant) was delivered and passed the canary. A failed delivery leaves it ``published``; the
reconciler hands it back to its lineage's job after ``redeliver_after_s``, which delivers again.
"""

from __future__ import annotations

import logging

from adapters_store import Manifest, StoreError
from forgetd.ledger import PayloadUnavailableError, RequestState
from forgetd.payload import Probe
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.receipts import decision_receipt
from forgetd.serving.sinks import Delivery, DeliveryOutcome, deliver
from forgetd.serving.sinks.canary import select_probes

logger = logging.getLogger(__name__)

S = RequestState


def deliver_version(ctx: PipelineContext, ids: list[str], manifest: Manifest) -> DeliveryOutcome:
    """Deliver ``manifest`` to every sink, its canary asking the probes of ``ids``; on a failed canary
    the requests still ``published`` go to ``needs_review`` (the version has been rolled back)."""
    delivery = Delivery(manifest, _previous(ctx, manifest), canary_probes(ctx, ids))
    outcome = deliver(ctx.sinks, ctx.store, delivery)
    if outcome.status == "canary_failed":
        send_to_review(ctx, ids, manifest, outcome.reason)
    return outcome


def keep_current(ctx: PipelineContext, lineage: str) -> DeliveryOutcome | None:
    """Deliver the lineage's current version again, without a canary (it passed one when it was new):
    a serving system that restarted meanwhile, such as a vLLM server, which forgets the adapters it
    loaded at run time, is brought back in line with the store. ``None``: the lineage has no version."""
    current = ctx.store.current(lineage)
    if current is None:
        return None
    return deliver(ctx.sinks, ctx.store, Delivery(current, None))


def canary_probes(ctx: PipelineContext, ids: list[str]) -> list[Probe]:
    """The forget probes of the requests whose payload is still readable, at most ``canary_max_probes``."""
    if ctx.settings.canary_max_probes == 0:
        return []
    per_request = []
    for request_id in ids:
        try:
            per_request.append(ctx.ledger.payload(request_id).forget_probes())
        except PayloadUnavailableError:
            logger.warning("request %s: payload gone, no canary probes from it", request_id)
    return select_probes(per_request, ctx.settings.canary_max_probes)


def carried_by(ctx: PipelineContext, current: Manifest, claimed: list[str]) -> tuple[list[str], list[str]]:
    """``(carried, orphaned)``: claimed requests published in ``current`` or, still ``published``, in one
    of its ancestors (a descendant keeps its parent's forgetting); and ``published`` ones in no version
    of that line (an operator moved the pointer away from theirs)."""
    carried = [i for i in claimed if i in current.request_ids]
    waiting = {i for i in claimed if i not in carried and ctx.ledger.get(i).state is S.PUBLISHED}
    version = current.parent
    while waiting and version is not None:
        try:
            ancestor = ctx.store.manifest(current.lineage, version)
        except StoreError:
            break  # an ancestor removed by garbage collection: nothing older can be checked
        carried += sorted(waiting.intersection(ancestor.request_ids))
        waiting -= set(ancestor.request_ids)
        version = ancestor.parent
    return carried, sorted(waiting)


def send_to_review(ctx: PipelineContext, ids: list[str], manifest: Manifest | None, reason: str) -> None:
    """Move the requests still ``published`` to ``needs_review``; ``reason`` holds no text of theirs."""
    details = {"adapter_version": manifest.version, "metrics": manifest.metrics} if manifest else {}
    for request_id in ids:
        record = ctx.ledger.get(request_id)
        if record.state is not S.PUBLISHED:
            continue  # moved on meanwhile (an operator, a redelivered job)
        receipt = decision_receipt(record, S.NEEDS_REVIEW, reason=reason, **details)
        ctx.ledger.transition(request_id, S.NEEDS_REVIEW, sources=[S.PUBLISHED], reason=reason, receipt=receipt)


def _previous(ctx: PipelineContext, manifest: Manifest) -> Manifest | None:
    if manifest.parent is None:
        return None
    try:
        return ctx.store.manifest(manifest.lineage, manifest.parent)
    except StoreError:
        return None  # garbage-collected: nothing to roll back to
