"""Which earlier requests' probes an update replays, so that what was forgotten stays forgotten.

Every request still inside its verification window is a candidate, but the replayed set is capped:
the cost of an update must not grow with the number of requests served. The cap is spread over the
earlier requests (one probe from each in turn, in a seeded order), so each of them is re-checked
every few updates instead of the most recent ones every time.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Sequence

from forgetd.payload import DeletionPayload, Probe


def replay_sample(earlier: Sequence[Sequence[Probe]], limit: int, seed: int) -> list[Probe]:
    """At most ``limit`` probes from the earlier requests' probe lists, one per request in turn."""
    order = list(range(len(earlier)))
    rng = random.Random(f"replay {seed} {len(earlier)}")
    rng.shuffle(order)
    queues = [list(earlier[i]) for i in order]
    for queue in queues:
        rng.shuffle(queue)
    chosen: list[Probe] = []
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop())
    return chosen



def recent_payloads(versions: Iterable[Sequence[str]], open_payload: Callable[[str], DeletionPayload],
                    unavailable: tuple[type[Exception], ...], limit: int) -> list[DeletionPayload]:
    """The payloads of up to ``limit`` of the most recent earlier requests that can still be opened.

    ``versions`` yields the request ids of each published version, newest first; ``open_payload`` raises
    one of ``unavailable`` for a request whose payload key was destroyed (its verification window
    closed), which is skipped. At most ``limit`` requests are looked at.
    """
    found: list[DeletionPayload] = []
    ids = (request_id for version in versions for request_id in version)
    for request_id in itertools.islice(ids, limit):
        try:
            found.append(open_payload(request_id))
        except unavailable:
            continue
    return found
