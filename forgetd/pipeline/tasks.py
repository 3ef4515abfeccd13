"""Thin Celery tasks: each takes ids, re-reads the ledger, and calls a plain function.

Only the worker imports this module (through the app's ``include``); the API enqueues by task name.
"""

from __future__ import annotations

import logging
import time

import redis
from celery import Task, current_app, shared_task
from celery.signals import worker_process_init

from forgetd.pipeline.admission import admit_request
from forgetd.pipeline.celery_app import ADMIT_PENDING_TASK, ADMIT_TASK, RECONCILE_TASK, RUN_BATCH_TASK, SHRED_TASK
from forgetd.pipeline.context import PipelineContext
from forgetd.pipeline.inbox import AdmissionInbox
from forgetd.pipeline.job import run_lineage_job
from forgetd.pipeline.reconciler import reconcile as reconcile_stuck
from forgetd.pipeline.scheduling import CeleryScheduler
from forgetd.settings import Settings

logger = logging.getLogger(__name__)

_context: PipelineContext | None = None
BUSY_RETRY_S = 5.0


def context() -> PipelineContext:
    """This worker process's context, built on first use (after fork, never in the parent)."""
    global _context
    if _context is None:
        settings: Settings = current_app.conf.forgetd_settings
        _context = PipelineContext.from_settings(settings, CeleryScheduler(current_app, settings))
    return _context


@worker_process_init.connect
def _reset_context_after_fork(**_: object) -> None:
    global _context
    _context = None


@shared_task(name=ADMIT_TASK, autoretry_for=(redis.ConnectionError, redis.TimeoutError),
             retry_backoff=True, max_retries=None)
def admit(request_id: str) -> str:
    return admit_request(context(), request_id).value


@shared_task(name=ADMIT_PENDING_TASK, autoretry_for=(redis.ConnectionError, redis.TimeoutError),
             retry_backoff=True, max_retries=None)
def admit_pending() -> int:
    """Admit the requests waiting in ``received`` (see :mod:`forgetd.pipeline.inbox`)."""
    ctx = context()
    return AdmissionInbox(ctx.ledger, ctx.scheduler).drain(lambda request_id: admit_request(ctx, request_id))


@shared_task(bind=True, name=RUN_BATCH_TASK, autoretry_for=(redis.ConnectionError, redis.TimeoutError),
             retry_backoff=True, max_retries=None)
def run_batch(self: Task, lineage: str) -> str:
    report = run_lineage_job(context(), lineage)
    if report.status == "busy":
        # Another worker holds the lineage's lease; it reschedules itself if work remains, but this
        # task may carry requests it has not seen yet, so come back rather than drop them.
        raise self.retry(countdown=BUSY_RETRY_S, max_retries=None)
    return report.status


@shared_task(name=SHRED_TASK, ignore_result=True)
def shred_expired() -> int:
    """Destroy the payload keys of requests whose verification window has closed."""
    return len(context().shred_due(time.time()))


@shared_task(name=RECONCILE_TASK, ignore_result=True)
def reconcile() -> int:
    """Nudge requests whose next step was lost (see :mod:`forgetd.pipeline.reconciler`)."""
    report = reconcile_stuck(context(), time.time())
    return len(report.readmitted) + len(report.requeued) + len(report.lineages_nudged)
