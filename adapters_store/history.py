"""A lineage's append-only event log (``history.jsonl``): one JSON object per line.

A crash can leave a torn last line in a local log; readers skip it and the next append cuts it off
first, so a torn line never fuses with a later event. Each storage appends in its own way (a locked
local append, a conditional rewrite of an object); the line format and parsing live here, once.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters_store.fsio import fsync_dir


def utc_now() -> str:
    """Current time as ISO-8601 UTC, the format of every timestamp the store writes."""
    return datetime.now(UTC).isoformat()


def event_line(event: dict[str, Any]) -> bytes:
    """``event`` stamped with ``at``, as one newline-terminated JSON line."""
    return (json.dumps({**event, "at": utc_now()}, sort_keys=True, allow_nan=False) + "\n").encode()


def append_event(path: Path, line: bytes) -> None:
    """Append ``line`` to a local log and fsync it; call with the writer lock held."""
    with path.open("a+b") as f:
        f.seek(0)
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)


def parse_events(data: bytes) -> list[dict[str, Any]]:
    """Events of a log's content in the order they were appended.

    Raises ValueError for a corrupt line other than a torn last one (the caller names the lineage).
    """
    complete = data.split(b"\n")[:-1]  # the piece after the last newline is b"" or a torn line
    events = []
    for number, line in enumerate(complete, start=1):
        event = json.loads(line)
        if not isinstance(event, dict):
            raise ValueError(f"line {number} is not a JSON object")
        events.append(event)
    return events
