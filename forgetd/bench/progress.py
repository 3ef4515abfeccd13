"""Progress lines while a benchmark runs: elapsed time and what it is doing, numbers only, never text."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Prints ``[  12.3 s] message`` lines to a stream (stderr by default); ``quiet`` prints nothing."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        print(f"[{self.elapsed_s:7.1f} s] {message}", file=self.stream, flush=True)
