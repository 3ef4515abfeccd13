"""Delivering one published version to every configured sink, and rolling back when a canary fails.

Sinks run in order (the embedded engines, then vLLM). A failed delivery stops there: the version stays
current in the store and the caller retries the whole delivery later (each sink's delivery is
idempotent). A failed canary rolls the store's pointer back to the previous version and delivers that
one again to the sinks that had taken the new one, so every serving system agrees with the store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from adapters_store import AdapterStore, StoreError
from forgetd.metrics import DELIVERIES
from forgetd.serving.sinks.base import CanaryFailedError, Delivery, DeliveryError, Sink

logger = logging.getLogger(__name__)

DeliveryStatus = Literal["delivered", "failed", "canary_failed"]


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened; ``reason`` (names, versions, counts only) is for a request's state and receipt."""

    status: DeliveryStatus
    reason: str = ""


def deliver(sinks: Sequence[Sink], store: AdapterStore, delivery: Delivery) -> DeliveryOutcome:
    """Deliver ``delivery.manifest`` to each sink in turn; see the module's docstring."""
    lineage = delivery.manifest.lineage
    delivered: list[Sink] = []
    for sink in sinks:
        try:
            sink.deliver(delivery)
        except CanaryFailedError as e:
            DELIVERIES.labels(sink.name, lineage, "canary_failed").inc()
            logger.error("lineage %s: %s", lineage, e)
            return DeliveryOutcome("canary_failed", f"{e.reason}; {_roll_back(store, [*delivered, sink], delivery)}")
        except DeliveryError as e:
            DELIVERIES.labels(sink.name, lineage, "failed").inc()
            logger.warning("lineage %s: %s; will be delivered again", lineage, e)
            return DeliveryOutcome("failed", f"{sink.name}: {e.reason}")
        DELIVERIES.labels(sink.name, lineage, "ok").inc()
        delivered.append(sink)
    return DeliveryOutcome("delivered")


def _roll_back(store: AdapterStore, sinks: Sequence[Sink], failed: Delivery) -> str:
    """Point the lineage back at the previous version and re-deliver it; returns what was done."""
    manifest, previous = failed.manifest, failed.previous
    if previous is None:
        return "no earlier version to roll back to"
    try:
        # Only if nothing moved the pointer since: a newer version or an operator's choice stands.
        if store.current_version(manifest.lineage) == manifest.version:
            store.set_current(manifest.lineage, previous.version,
                              reason=f"canary failed for {manifest.ref.served_name}")
    except StoreError as e:
        logger.error("lineage %s: rollback to v%d failed: %s", manifest.lineage, previous.version, e)
        return f"rollback to v{previous.version} failed ({type(e).__name__})"
    restored = Delivery(previous, None)
    for sink in sinks:
        try:
            sink.deliver(restored)
        except DeliveryError as e:
            # The store's pointer is the truth, and engines re-sync from it: this only delays them.
            logger.error("lineage %s: re-delivering v%d after rollback: %s", manifest.lineage, previous.version, e)
    return f"rolled back to v{previous.version}"
