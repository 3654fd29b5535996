"""The memory panel: process RSS (and GPU) over time, and this page's last explanation's peak."""
from __future__ import annotations

import time

from nicegui import ui

from ..views import memory_chart
from .runner import JobRunner
from .state import PageState


class MemoryPanel:
    def __init__(self, ps: PageState, runner: JobRunner) -> None:
        self.ps = ps
        with ui.expansion("Memory", icon="memory").classes("w-full"):
            self.label = ui.label("").classes("text-sm").props("id=mem-label")
            self.chart = ui.echart(memory_chart([])).classes("w-full h-48")
        runner.every(2.0, self.sample)

    def sample(self) -> None:
        from heta_lite.profiling import snapshot

        snap = snapshot()
        rss = snap.rss_bytes / 2**20
        gpu = None if snap.gpu_used_bytes is None else snap.gpu_used_bytes / 2**20
        self.ps.samples = (self.ps.samples + [(time.strftime("%H:%M:%S"), rss, gpu)])[-150:]
        self.chart.options.clear()
        self.chart.options.update(memory_chart(self.ps.samples))
        self.chart.update()
        if snap.gpu:
            gpu_text = f"GPU {snap.gpu}: {snap.gpu_used_bytes / 2**30:.1f}/{snap.gpu_total_bytes / 2**30:.1f} GiB used"
            if snap.gpu_process_bytes:
                gpu_text += f" ({snap.gpu_process_bytes / 2**30:.1f} GiB by this process)"
            if snap.torch_allocated_bytes is not None:
                gpu_text += (f"; torch allocated {snap.torch_allocated_bytes / 2**20:.0f} MiB, reserved "
                             f"{snap.torch_reserved_bytes / 2**20:.0f} MiB, peak {snap.torch_peak_bytes / 2**20:.0f} MiB")
            gpu_text += "."
        else:
            gpu_text = "No GPU present: showing process memory (RSS) only."
        peak = self.ps.last_peak or {}  # this page's explanation, not another user's
        peak_text = f" Last explanation's peak RSS: {peak['peak_rss_bytes'] / 2**20:.0f} MiB" if peak else ""
        if peak and peak.get("peak_torch_cuda_bytes"):
            peak_text += f", peak GPU (torch) {peak['peak_torch_cuda_bytes'] / 2**20:.0f} MiB"
        peak_text += "." if peak else ""
        self.label.text = f"Process RSS {rss:.0f} MiB. {gpu_text}{peak_text}"
