"""Profiling works without a GPU and says so."""
import time

import torch

from heta_lite.profiling import PeakMemory, StageTimer, snapshot


def test_snapshot_without_gpu_reports_none():
    snap = snapshot()
    assert snap.rss_bytes > 10 * 2**20
    if not torch.cuda.is_available():
        assert snap.gpu is None and snap.gpu_used_bytes is None and snap.torch_allocated_bytes is None


def test_peak_memory_sees_a_temporary_allocation():
    import numpy as np
    import psutil

    with PeakMemory(interval=0.01) as peak:
        before = psutil.Process().memory_info().rss
        big = np.ones(256 * 2**20 // 8)  # 256 MiB, freshly mapped and touched
        during = psutil.Process().memory_info().rss
        time.sleep(0.1)
        del big
    assert during - before > 200 * 2**20  # the allocation really was resident ...
    assert peak.peak_rss >= during - 16 * 2**20  # ... and the sampler saw it
    assert peak.to_dict()["gpu_present"] == torch.cuda.is_available()


def test_stage_timer_adds_repeated_stages():
    t = StageTimer()
    for _ in range(2):
        with t.stage("x"):
            time.sleep(0.02)
    assert t.seconds["x"] >= 0.04
