"""What a piece of work cost: wall and process CPU seconds, GPU time, peak memory.

Peak host memory is the largest resident set size sampled while the work ran (``/proc/self/statm`` every
few milliseconds on Linux; the process's lifetime peak from ``getrusage`` elsewhere), so it is the
process's footprint, loaded models included, not only what the work added. GPU seconds are the wall
seconds the work held a CUDA device (synchronised at both ends); GPU memory is torch's peak allocation.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from dataclasses import dataclass
from types import TracebackType

import torch

SAMPLE_INTERVAL_S = 0.01


@dataclass(frozen=True)
class Cost:
    """The cost of one measured piece of work."""

    wall_s: float
    cpu_s: float  # user + system CPU seconds of this process (all its threads)
    gpu_s: float | None  # None when no CUDA device was used
    peak_rss_bytes: int
    peak_gpu_bytes: int | None

    def __add__(self, other: Cost) -> Cost:
        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        def peak(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else max(a or 0, b or 0)

        gpu_bytes = peak(self.peak_gpu_bytes, other.peak_gpu_bytes)
        return Cost(self.wall_s + other.wall_s, self.cpu_s + other.cpu_s, add(self.gpu_s, other.gpu_s),
                    max(self.peak_rss_bytes, other.peak_rss_bytes), gpu_bytes)


class CostMeter:
    """``with CostMeter(device) as meter: ...`` then ``meter.cost``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._cuda = device.type == "cuda"
        self._peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="forgetd-cost-meter", daemon=True)
        self._started_wall = self._started_cpu = 0.0
        self._cost: Cost | None = None

    @property
    def cost(self) -> Cost:
        if self._cost is None:
            raise RuntimeError("the cost is known once the measured block has ended")
        return self._cost

    def __enter__(self) -> CostMeter:
        if self._cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._peak_rss = current_rss_bytes()
        self._sampler.start()
        self._started_wall, self._started_cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._cuda:
            torch.cuda.synchronize(self.device)
        wall, cpu = time.perf_counter() - self._started_wall, time.process_time() - self._started_cpu
        self._stop.set()
        self._sampler.join()
        self._peak_rss = max(self._peak_rss, current_rss_bytes())
        gpu_bytes = int(torch.cuda.max_memory_allocated(self.device)) if self._cuda else None
        self._cost = Cost(wall, cpu, wall if self._cuda else None, self._peak_rss, gpu_bytes)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self._peak_rss = max(self._peak_rss, current_rss_bytes())


def current_rss_bytes() -> int:
    """This process's resident set size now (Linux), or its lifetime peak where /proc is missing."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux
