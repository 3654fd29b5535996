"""One job runner per page: a single ui.timer that follows the page's main job (the progress
card), its side jobs (estimate, logit lens, attention) and the panels' periodic refreshes.
The event loop only reads job state; model work runs on the queue's workers."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from nicegui import ui

from heta_lite.jobs import CANCELLED, DONE, FAILED, FINISHED, QueueFull

from ..state import AppState
from .state import PageState

log = logging.getLogger(__name__)

JOB_WORDS = {"explain": "Explaining", "generate": "Generating", "compare": "Comparing", "explore": "Exploring",
             "estimate": "Estimating the time"}


class ProgressCard:
    """Status line, cancel button and progress bar of the main job."""

    def __init__(self, on_cancel: Callable[[], None]) -> None:
        with ui.card().classes("w-full") as self.card:
            with ui.row().classes("items-center w-full gap-3"):
                self.status = ui.label("").props("id=status")
                self.cancel_btn = ui.button("Cancel", on_click=on_cancel) \
                    .props("flat color=negative id=cancel").mark("cancel")
            self.bar = ui.linear_progress(value=0, show_value=False).classes("w-full")
        self.card.set_visibility(False)


class JobRunner:
    def __init__(self, state: AppState, ps: PageState, show_error: Callable[[str | None], None],
                 interval: float = 0.25) -> None:
        self.state, self.ps, self.show_error = state, ps, show_error
        self.progress: ProgressCard | None = None
        self.on_failure: Callable[[], None] = lambda: None  # the main job failed or was cancelled
        self.main: tuple[Any, Callable] | None = None
        self.side: dict[str, tuple[Any, Callable, bool]] = {}
        self._tickers: list[list] = []  # [period, next due, fn]
        self.timer = ui.timer(interval, self.tick)

    def build_progress(self) -> ProgressCard:
        self.progress = ProgressCard(self.cancel)
        return self.progress

    def every(self, period: float, fn: Callable[[], None]) -> None:
        """Run `fn` on this runner's timer every `period` seconds (first at the next tick)."""
        self._tickers.append([period, 0.0, fn])

    # ---- jobs ------------------------------------------------------------------------------
    def submit(self, fn, kind: str, on_done: Callable) -> None:
        """Queue the page's main job (shown in the progress card); a full queue shows its message."""
        try:
            job = self.state.queue.submit(fn, kind=kind)
        except QueueFull as err:
            self.show_error(str(err))
            return
        self.attach(job, on_done)
        if kind == "explain":  # a reload of this URL re-attaches to the job
            ui.navigate.history.replace(f"/?job={job.id}")

    def attach(self, job, on_done: Callable) -> None:
        self.main = (job, on_done)
        self.progress.card.set_visibility(True)
        self.progress.cancel_btn.enable()

    def submit_side(self, key: str, fn, kind: str, on_done: Callable, show_errors: bool = True) -> None:
        """A job outside the progress card (raises QueueFull); `on_done(result)` when it is done."""
        self.side[key] = (self.state.queue.submit(fn, kind=kind), on_done, show_errors)

    def cancel(self) -> None:
        if self.main is not None:
            self.state.queue.cancel(self.main[0].id)

    # ---- the one timer ---------------------------------------------------------------------
    def tick(self) -> None:
        now = time.monotonic()
        for t in self._tickers:
            if now >= t[1]:
                t[1] = max(t[1] + t[0], now + t[0] / 2)
                try:
                    t[2]()
                except Exception:  # noqa: BLE001 - one panel's refresh must not stop the others
                    log.exception("page refresh failed")
        if self.main is not None:
            self._follow_main()
        for key, (job, on_done, show_errors) in list(self.side.items()):
            if job.state in FINISHED:
                del self.side[key]
                if job.state == DONE:
                    on_done(job.result)
                elif job.state == FAILED and show_errors:
                    self.show_error(job.error)

    def _follow_main(self) -> None:
        job, on_done = self.main
        p = self.progress
        if job.state in FINISHED:
            self.main = None
            p.card.set_visibility(job.state != DONE)
            p.cancel_btn.disable()
            if job.state == DONE:
                on_done(job.result)
            else:
                p.status.text = "Cancelled." if job.state == CANCELLED else f"Failed: {job.error}"
                self.show_error(job.error if job.state == FAILED else None)
                self.on_failure()
            return
        view = self.state.queue.status(job.id) or {}
        pos = view.get("queue_position", 0)
        if view.get("cancel_requested"):
            p.status.text = "Cancelling (stops at the next safe point)…"
        elif pos:
            wait = view.get("wait_s")
            p.status.text = (f"Waiting in the queue: position {pos}"
                             + (f" · starts in about {wait:.0f} s" if wait else "")
                             + " (other users' or panels' jobs run first)")
            p.bar.value = 0
        else:
            p.status.text = f"{JOB_WORDS.get(job.kind, job.kind)}: " + stage_text(job) + self.eta_text(job)
            p.bar.value = job.fraction

    def eta_text(self, job) -> str:
        """ETA: the calibrated estimate for this preset minus the time spent, or else the current
        stage's rate; both are rough."""
        total = self.ps.estimates.get(self.ps.job_quality) if job.kind == "explain" else None
        left = None
        if total is not None:
            left = max(total - job.elapsed_s, job.eta_s() or 0.0)
        elif job.eta_s() is not None:
            left = job.eta_s()
        return f" · about {left:.0f} s left (estimate)" if left is not None and left >= 0.5 else ""


def stage_text(job) -> str:
    if not job.stage:
        return "starting"
    return f"{job.stage} {job.done}/{job.total}" if job.total > 1 else job.stage
