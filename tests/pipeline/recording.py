from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecordingScheduler:
    """Records what pipeline steps ask for, in place of sending Celery tasks (the end-to-end and
    fault tests run the real Celery path)."""

    admitted: list[str] = field(default_factory=list)
    admit_pending_calls: int = 0
    batches: list[tuple[str, float]] = field(default_factory=list)

    def admit(self, request_id: str) -> None:
        self.admitted.append(request_id)

    def admit_pending(self) -> None:
        self.admit_pending_calls += 1

    def run_batch(self, lineage: str, delay_s: float) -> None:
        self.batches.append((lineage, delay_s))
