"""The admission inbox: received requests wait in the ledger's ``received`` state, and one Celery
message at a time asks a worker to admit all of them.

:meth:`AdmissionInbox.submit` stores a request (record, sealed payload, membership of ``received``)
and, in the same atomic Lua call, sets the admission flag ``p:admit:pending`` unless it is set
already; whoever set it sends one ``admit_pending`` task. The task clears the flag before it reads
``received``, so a request stored before the flag was cleared is seen by that read, and a request
stored after it sets the flag again and sends a new task. Under load one message admits hundreds of
requests, and intake costs one Redis round trip per request instead of a broker publish.

Nothing accepted can be stranded: the request and its claim on admission are written together; if
the message is lost (broker down, deleted) the flag expires and the next request sends another, and
the reconciler re-admits requests left in ``received`` when no request follows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from kombu.exceptions import OperationalError

from forgetd.ledger import DeletionRecord, IllegalTransitionError, Ledger, NewRequest, RequestState
from forgetd.pipeline.scheduling import TaskScheduler

logger = logging.getLogger(__name__)

PENDING_FLAG_TTL_MS = 5_000  # how long a lost admit_pending message can delay the next one
DRAIN_BATCH = 256  # requests one task admits before it hands the rest to a new message

AdmitFunction = Callable[[str], object]


class AdmissionInbox:
    def __init__(self, ledger: Ledger, scheduler: TaskScheduler) -> None:
        self._ledger = ledger
        self._scheduler = scheduler

    def submit(self, new: NewRequest) -> tuple[DeletionRecord, bool]:
        """Store ``new`` and make sure a worker will admit it; ``(record, created)`` as
        :meth:`Ledger.create`. Never raises for the broker: the request is stored either way."""
        submission = self._ledger.submit(new, admission_flag_ttl_ms=PENDING_FLAG_TTL_MS)
        if submission.admission_flag_set:
            self._send()
        return submission.record, submission.created

    def drain(self, admit: AdmitFunction) -> int:
        """Worker side: admit up to :data:`DRAIN_BATCH` received requests; returns how many were taken."""
        self._ledger.redis.delete(self._ledger.admission_flag_key)  # first: later requests notify again
        request_ids = self._ledger.some_in_state(RequestState.RECEIVED, DRAIN_BATCH)
        for request_id in request_ids:
            try:
                admit(request_id)
            except IllegalTransitionError:
                pass  # another worker's drain admitted it first
            except redis.RedisError:
                raise  # the whole task is retried
            except Exception as e:  # one bad request must not hold up the others; the reconciler retries it
                logger.error("admission of request %s failed: %s", request_id, type(e).__name__)
        if len(request_ids) == DRAIN_BATCH and self._ledger.redis.set(
                self._ledger.admission_flag_key, b"1", nx=True, px=PENDING_FLAG_TTL_MS):
            self._send()  # more may wait: a new message, so that no single task runs unbounded
        return len(request_ids)

    def _send(self) -> None:
        try:
            self._scheduler.admit_pending()
        except (OperationalError, redis.RedisError) as e:
            # Let the next request try at once rather than after the flag's TTL.
            logger.warning("admit_pending not sent (%s); the next request or the reconciler will", type(e).__name__)
            self._ledger.redis.delete(self._ledger.admission_flag_key)
