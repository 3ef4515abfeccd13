"""The Celery application, configured for at-least-once delivery on Redis (DESIGN.md).

Nothing is configured at import: :func:`create_celery_app` is called by the process that needs it
(the worker's start-up, the API's lifespan) with the settings it loaded.
"""

from __future__ import annotations

from celery import Celery

from forgetd.settings import Settings

ADMIT_TASK = "forgetd.admit"
ADMIT_PENDING_TASK = "forgetd.admit_pending"
RUN_BATCH_TASK = "forgetd.run_batch"
SHRED_TASK = "forgetd.shred_expired"
RECONCILE_TASK = "forgetd.reconcile"


def create_celery_app(settings: Settings) -> Celery:
    # include: the worker imports the tasks (and torch behind them) when it starts; a process that
    # only sends tasks (the API) never does.
    app = Celery("forgetd", broker=settings.celery_broker_url, include=["forgetd.pipeline.tasks"],
                 set_as_current=True)
    app.conf.update(
        # A message is acknowledged only after its task returns, and handed back if the worker
        # process dies: a crash mid-job redelivers it instead of losing it.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redis redelivers an unacknowledged message after this long: longer than the longest job.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # tasks never wait on each other; the ledger holds the outcome
        task_default_queue=settings.queue_name,
        task_routes={RUN_BATCH_TASK: {"queue": settings.gpu_queue_name}},
        # On a cold shutdown (a second SIGTERM, SIGQUIT) the running job still gets this long to
        # finish; if it does not, its unacknowledged message is restored to the queue.
        worker_soft_shutdown_timeout=settings.shutdown_grace_s,
        worker_enable_soft_shutdown_on_idle=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={
            "shred-expired": {"task": SHRED_TASK, "schedule": settings.shred_interval_s},
            "reconcile": {"task": RECONCILE_TASK, "schedule": settings.reconcile_interval_s},
        },
    )
    app.conf.forgetd_settings = settings
    return app
