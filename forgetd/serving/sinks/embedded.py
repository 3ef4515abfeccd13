"""forgetd's own serving engine: announce on Redis, then (with a serving URL) see the alias move and ask
the canary through it.

The announcement is a hint and the engines also re-sync from the store, so without a serving URL the
announcement is the whole delivery. With one, delivery means the alias answers with the new version:
``/v1/models`` shows the alias's ``root`` on it, and each canary completion names it as the answering
model (behind a Service, a replica still on the old version makes the delivery retry later).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from forgetd.serving.sinks.base import CanaryFailedError, Delivery, DeliveryError
from forgetd.serving.sinks.canary import run_canary
from forgetd.serving.sinks.http import EndpointError, ServingEndpoint

logger = logging.getLogger(__name__)

Announce = Callable[[str, int], None]


class EmbeddedSink:
    """Delivers to forgetd's embedded engines; ``endpoint`` None: announce only."""

    name = "embedded"

    def __init__(self, announce: Announce, endpoint: ServingEndpoint | None, *, timeout_s: float = 60.0,
                 poll_s: float = 0.5) -> None:
        self._announce = announce
        self._endpoint = endpoint
        self._timeout_s = timeout_s
        self._poll_s = poll_s

    def deliver(self, delivery: Delivery) -> None:
        manifest = delivery.manifest
        self._announce(manifest.lineage, manifest.version)
        if self._endpoint is None:
            return
        served = manifest.ref.served_name
        try:
            self._wait_for_alias(self._endpoint, manifest.lineage, served)
            if not delivery.probes:
                return
            result = run_canary(self._endpoint, manifest.lineage, delivery.probes,
                                allowance=delivery.canary_allowance, lineage=manifest.lineage)
        except EndpointError as e:
            raise DeliveryError(self.name, served, str(e)) from e
        if result.answered_by != {served}:
            raise DeliveryError(self.name, served, f"alias answered by {sorted(result.answered_by)}")
        if not result.passed:
            # The store's pointer is rolled back by the caller (forgetd.serving.sinks.delivery), which
            # then delivers the previous version here again.
            raise CanaryFailedError(self.name, served, result.recalled, result.asked, result.allowed)

    def _wait_for_alias(self, endpoint: ServingEndpoint, lineage: str, served: str) -> None:
        deadline = time.monotonic() + self._timeout_s
        while True:
            card = endpoint.models().get(lineage)
            if card is not None and card.get("root") == served:
                return
            if time.monotonic() >= deadline:
                now = card.get("root") if card else None
                raise EndpointError(f"alias {lineage} still on {now} after {self._timeout_s:.0f} s")
            time.sleep(self._poll_s)
