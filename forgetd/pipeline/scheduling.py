"""Asking for pipeline work: the one seam between pipeline logic and the Celery broker.

Pipeline functions call a :class:`TaskScheduler`; the Celery one sends tasks by name, so a process
that only schedules (the API) never imports the tasks or what is behind them.
"""

from __future__ import annotations

from typing import Protocol

from celery import Celery

from forgetd.pipeline.celery_app import ADMIT_PENDING_TASK, ADMIT_TASK, RUN_BATCH_TASK
from forgetd.settings import Settings


class TaskScheduler(Protocol):
    def admit(self, request_id: str) -> None:
        """Ask for ``request_id`` to be admitted (idempotent on the receiving side)."""

    def admit_pending(self) -> None:
        """Ask for every received request to be admitted (see :mod:`forgetd.pipeline.inbox`)."""

    def run_batch(self, lineage: str, delay_s: float) -> None:
        """Ask for a batch job on ``lineage`` in ``delay_s`` seconds (extra asks are harmless)."""


class CeleryScheduler:
    def __init__(self, app: Celery, settings: Settings) -> None:
        self._app = app
        self._settings = settings

    def admit(self, request_id: str) -> None:
        self._app.send_task(ADMIT_TASK, args=[request_id], queue=self._settings.queue_name)

    def admit_pending(self) -> None:
        self._app.send_task(ADMIT_PENDING_TASK, queue=self._settings.queue_name)

    def run_batch(self, lineage: str, delay_s: float) -> None:
        self._app.send_task(RUN_BATCH_TASK, args=[lineage], countdown=delay_s or None,
                            queue=self._settings.gpu_queue_name)
