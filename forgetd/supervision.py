"""Waiting on child processes: the one loop ``forgetd up`` and a several-process ``forgetd api`` share."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

POLL_S = 0.5


def wait_for_stop(first_exited: Callable[[], str | None]) -> int:
    """Block until SIGTERM or Ctrl-C (returns 0) or until a child exits (returns 1, after logging
    ``first_exited()``'s description of it); stopping the children is the caller's."""
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stopping:
        exited = first_exited()
        if exited is not None:
            logger.error("%s; stopping the others", exited)
            return 1
        time.sleep(POLL_S)
    return 0
