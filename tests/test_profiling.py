"""Profiling works without a GPU and says so."""
import time

import torch

from profiling.memory import PeakMemory, StageTimer, snapshot


def test_snapshot_without_gpu_reports_none():
    snap = snapshot()
    assert snap.rss_bytes > 10 * 2**20
    if not torch.cuda.is_available():
        assert snap.gpu is None and snap.gpu_used_bytes is None and snap.torch_allocated_bytes is None


def test_peak_memory_sees_a_temporary_allocation():
    with PeakMemory(interval=0.01) as peak:
        before = peak.peak_rss
        big = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        big += 1
        time.sleep(0.1)
        del big
    assert peak.peak_rss - before > 40 * 2**20
    assert peak.to_dict()["gpu_present"] == torch.cuda.is_available()


def test_stage_timer_adds_repeated_stages():
    t = StageTimer()
    for _ in range(2):
        with t.stage("x"):
            time.sleep(0.02)
    assert t.seconds["x"] >= 0.04
