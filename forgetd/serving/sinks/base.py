"""What delivering a published version to what serves it means, whatever serves it.

A :class:`Sink` makes a published version answer under the name clients use, proves it does (the
canary), and retires the version it replaces. The adapter store's pointer stays the truth of which
version is current; a sink only brings one serving system in line with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from adapters_store import Manifest
from forgetd.payload import Probe


class DeliveryError(Exception):
    """A sink could not make the version serve (unreachable, refused, not live in time).

    Transient as far as the pipeline knows: the requests stay ``published`` and the reconciler
    delivers again. Messages carry names, versions and status codes, never probe text.
    """

    def __init__(self, sink: str, served_name: str, reason: str) -> None:
        super().__init__(f"{sink}: {served_name} not delivered: {reason}")
        self.sink = sink
        self.served_name = served_name
        self.reason = reason


class CanaryFailedError(DeliveryError):
    """The served version still reproduces forgotten answers.

    The sink has withdrawn what it alone placed (a vLLM adapter, a resolver folder); moving the store's
    pointer back is the caller's (:func:`forgetd.serving.sinks.delivery.deliver`).
    """

    def __init__(self, sink: str, served_name: str, recalled: int, asked: int, allowed: int = 0,
                 detail: str = "") -> None:
        super().__init__(sink, served_name, f"canary: {recalled} of {asked} forget probes still answered "
                                            f"({allowed} allowed){detail}")
        self.recalled = recalled
        self.asked = asked
        self.allowed = allowed


@dataclass(frozen=True)
class Delivery:
    """One published version to deliver, the version it replaces, and the probes its canary asks.

    ``probes`` are the forget probes of the batch the version was trained on (personal data: kept in
    memory, never logged); empty when their payloads are gone, which skips the canary.
    """

    manifest: Manifest
    previous: Manifest | None
    probes: Sequence[Probe] = field(default_factory=tuple)

    @property
    def canary_allowance(self) -> float:
        """The share of ``probes`` the served version may still answer: the forget recall verification
        allowed it (a model that never saw the data guesses some answers from priors). 0 for versions
        whose manifest does not record it."""
        return self.manifest.metrics.get("forget_recall_limit", 0.0)

    def __repr__(self) -> str:
        previous = self.previous.ref.served_name if self.previous else None
        return f"Delivery({self.manifest.ref.served_name}, previous={previous}, probes={len(self.probes)})"


class Sink(Protocol):
    """Something that serves adapter versions and is told about new ones."""

    @property
    def name(self) -> str:
        """A short enumeration value for metric labels and logs: ``embedded``, ``vllm``, ``resolver``."""
        ...

    def deliver(self, delivery: Delivery) -> None:
        """Make ``delivery.manifest`` serve and check it; idempotent, so a redelivery is safe.

        Raises :class:`DeliveryError` when it could not (retry later) and :class:`CanaryFailedError`
        when it served but failed the canary (after rolling back).
        """
        ...
