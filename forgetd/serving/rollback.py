"""Rollback: point a lineage back (or forward) at an earlier published version, then tell the engines.

Shared by ``forgetd adapters rollback`` and ``POST /v1/adapters/{lineage}/rollback``. The store's
``set_current`` checks the version's hashes first and records the move, with its reason, in the
lineage's history; the announcement only hurries the engines, which follow the pointer whichever way it
moves and re-sync from the store every few seconds anyway, so an unreachable Redis delays, never loses,
the rollback.
"""

from __future__ import annotations

import logging

import redis

from adapters_store import AdapterStore
from forgetd.serving.notify import announce_version

logger = logging.getLogger(__name__)


def roll_back(
    store: AdapterStore, redis_client: redis.Redis, key_prefix: str, lineage: str, version: int, *, reason: str
) -> bool:
    """Make ``version`` the lineage's current one; whether the engines were told at once.

    Raises the store's errors: VersionNotFoundError, IntegrityError, InvalidNameError, StoreError.
    """
    store.set_current(lineage, version, reason=reason)
    logger.info("lineage %s rolled to v%d", lineage, version)
    try:
        announce_version(redis_client, key_prefix, lineage, version)
    except redis.RedisError as e:
        logger.warning("rollback of %s not announced (%s); engines follow on their next re-sync", lineage, e)
        return False
    return True
