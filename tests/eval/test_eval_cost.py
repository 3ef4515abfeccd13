"""The cost meter: wall and CPU seconds, peak memory, and adding costs up."""

from __future__ import annotations

import time

import pytest
import torch

from forgetd.eval.cost import Cost, CostMeter, current_rss_bytes


def test_meter_measures_wall_cpu_and_peak_memory():
    resident_before = current_rss_bytes()
    with CostMeter(torch.device("cpu")) as meter:
        start = time.process_time()
        while time.process_time() - start < 0.05:  # busy: CPU time
            pass
        block = torch.ones(256 * 1024 * 1024 // 4)  # 256 MiB, touched
        time.sleep(0.05)  # idle: wall time only
        del block
    cost = meter.cost
    assert cost.wall_s >= 0.1
    assert cost.cpu_s >= 0.05
    assert cost.gpu_s is None and cost.peak_gpu_bytes is None
    assert cost.peak_rss_bytes >= resident_before + 200 * 1024 * 1024  # the block was resident at its peak


def test_cost_is_unknown_until_the_block_ends():
    meter = CostMeter(torch.device("cpu"))
    with pytest.raises(RuntimeError, match="once the measured block has ended"):
        _ = meter.cost


def test_costs_add_times_and_keep_the_higher_peak():
    a = Cost(wall_s=1.0, cpu_s=2.0, gpu_s=None, peak_rss_bytes=10, peak_gpu_bytes=None)
    b = Cost(wall_s=0.5, cpu_s=1.0, gpu_s=3.0, peak_rss_bytes=30, peak_gpu_bytes=5)
    assert a + b == Cost(wall_s=1.5, cpu_s=3.0, gpu_s=3.0, peak_rss_bytes=30, peak_gpu_bytes=5)
    assert a + a == Cost(wall_s=2.0, cpu_s=4.0, gpu_s=None, peak_rss_bytes=10, peak_gpu_bytes=None)
