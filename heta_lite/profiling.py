"""Memory of this process and the GPU: psutil RSS, torch allocator, NVML. Works without a GPU."""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil
import torch


@dataclass
class MemorySnapshot:
    rss_bytes: int
    torch_allocated_bytes: int | None = None
    torch_reserved_bytes: int | None = None
    torch_peak_bytes: int | None = None
    gpu_used_bytes: int | None = None
    gpu_total_bytes: int | None = None
    gpu_process_bytes: int | None = None
    gpu: str | None = None  # None: no GPU present

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _nvml_info() -> dict[str, Any]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound etc: no GPU here
        return {}
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device() if torch.cuda.is_available() else 0)
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        info: dict[str, Any] = {"gpu_used_bytes": int(mem.used), "gpu_total_bytes": int(mem.total),
                                "gpu": str(pynvml.nvmlDeviceGetName(handle))}
        import os

        try:
            procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            mine = [p.usedGpuMemory for p in procs if p.pid == os.getpid() and p.usedGpuMemory]
            info["gpu_process_bytes"] = int(sum(mine)) if mine else None
        except Exception:  # noqa: BLE001 - not permitted in some containers
            pass
        return info
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def snapshot() -> MemorySnapshot:
    snap = MemorySnapshot(rss_bytes=psutil.Process().memory_info().rss)
    if torch.cuda.is_available():
        snap.torch_allocated_bytes = int(torch.cuda.memory_allocated())
        snap.torch_reserved_bytes = int(torch.cuda.memory_reserved())
        snap.torch_peak_bytes = int(torch.cuda.max_memory_allocated())
    for k, v in _nvml_info().items():
        setattr(snap, k, v)
    return snap


class PeakMemory:
    """Context manager: peak RSS (sampled every `interval` s) and peak torch CUDA memory of a block."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_rss = self.start_rss = 0
        self.peak_torch: int | None = None
        self.start_torch: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.peak_rss = self.start_rss = psutil.Process().memory_info().rss
        self.start_torch = None
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            self.start_torch = int(torch.cuda.memory_allocated())
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak_rss = max(self.peak_rss, psutil.Process().memory_info().rss)
        if torch.cuda.is_available():
            self.peak_torch = int(torch.cuda.max_memory_allocated())

    @property
    def added_bytes(self) -> int:
        """What the block added at its peak above what was resident when it began (GPU: torch's
        allocations; CPU: RSS). This is what a job's memory estimate predicts."""
        if self.peak_torch is not None and self.start_torch is not None:
            return self.peak_torch - self.start_torch
        return self.peak_rss - self.start_rss

    def to_dict(self) -> dict[str, Any]:
        return {"peak_rss_bytes": int(self.peak_rss), "peak_torch_cuda_bytes": self.peak_torch,
                "gpu_present": torch.cuda.is_available()}


class StageTimer:
    """Wall-clock seconds per named stage (stages may repeat; times add up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def stage(self, name: str):
        timer = self

        class _Stage:
            def __enter__(self_inner):
                self_inner.t0 = time.perf_counter()

            def __exit__(self_inner, *exc):
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - self_inner.t0

        return _Stage()
