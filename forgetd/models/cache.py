"""Building a model folder exactly once, however many processes ask for it at the same time."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def build_once(target: Path, build: Callable[[Path], object]) -> Path:
    """Return ``target``, first running ``build(tmp_dir)`` and renaming ``tmp_dir`` to it if it is missing.

    ``target`` only ever appears through an atomic rename of a finished build, so its existence means it
    is complete. An exclusive lock on a sibling file makes concurrent callers (threads or processes)
    wait for the first build instead of repeating it; a build that crashed leaves at most a temporary
    folder, cleaned up by the next builder.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if target.is_dir():
            return target
        _remove_stale_builds(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            build(tmp)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    logger.info("built model folder %s", target)
    return target


def _remove_stale_builds(target: Path) -> None:
    # Only the lock holder builds, so any temporary folder left beside the target is from a crash.
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
