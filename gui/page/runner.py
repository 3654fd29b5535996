"""One job runner per page: a single ui.timer that follows the page's main job (the progress
card), its side jobs (estimate, logit lens, attention) and the panels' periodic refreshes.
The event loop only reads job state; model work runs on the queue's workers.

The page's jobs take the same per-client limits as the API's (the app's RateLimiter, keyed by the
same client address), and a page holds at most one main job and one side job per kind: a new one
cancels the one it replaces. An explanation's job token is kept in this tab's storage
(`app.storage.tab`, keyed by a per-tab id that lives in the browser's sessionStorage), never in
the URL: `/?job=<id>` re-attaches only in the tab that holds the token."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from nicegui import app, ui

from heta_lite.errors import ClientLimited, HetaError
from heta_lite.jobs import CANCELLED, DONE, FAILED, FINISHED

from ..state import AppState
from .state import PageState

log = logging.getLogger(__name__)

TOKENS_KEY = "heta_job_tokens"  # app.storage.tab: {job id: token} of this tab's explanations
MAX_KEPT_TOKENS = 16
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
        self.client = page_client(state)
        self.abandoned = False  # the page is gone (abandon)
        self.timer = ui.timer(interval, self.tick)
        ui.context.client.on_delete(self.abandon)

    def abandon(self) -> None:
        """The page is gone (closed, or not back within NiceGUI's reconnect timeout): cancel the jobs
        nobody can see any more, so the worker is free for others (each stops at its next safe point).
        An explanation stays: a reload of its `?job=` link in the same tab re-attaches to it."""
        self.abandoned = True
        jobs = [job for job, *_ in self.side.values()]
        if self.main is not None and self.main[0].kind != "explain":
            jobs.append(self.main[0])
        for job in jobs:
            self.state.queue.cancel(job.id)
        self.side.clear()

    def build_progress(self) -> ProgressCard:
        self.progress = ProgressCard(self.cancel)
        return self.progress

    def every(self, period: float, fn: Callable[[], None]) -> None:
        """Run `fn` on this runner's timer every `period` seconds (first at the next tick)."""
        self._tickers.append([period, 0.0, fn])

    # ---- jobs ------------------------------------------------------------------------------
    def submit(self, fn, kind: str, on_done: Callable, texts: tuple[str, ...] = ()) -> None:
        """Queue the page's main job (shown in the progress card), replacing (cancelling) the one it
        followed; a refusal (full queue, client limits) shows its message. `texts`: the job's
        prompts, kept out of the logs until it ends (with the page's current prompt, `job_texts`)."""
        try:
            job = self._submit(fn, kind, texts=texts)
        except HetaError as err:
            self.show_error(str(err))
            return
        if self.main is not None:
            self.state.queue.cancel(self.main[0].id)
        self.attach(job, on_done)
        if kind == "explain" and remember_token(job):  # a reload of this URL, in this tab, re-attaches
            ui.navigate.history.replace(f"/?job={job.id}")

    def attach(self, job, on_done: Callable) -> None:
        self.main = (job, on_done)
        self.progress.card.set_visibility(True)
        self.progress.cancel_btn.enable()

    def submit_side(self, key: str, fn, kind: str, on_done: Callable, show_errors: bool = True,
                    rated: bool = False, texts: tuple[str, ...] = ()) -> None:
        """A job outside the progress card, replacing (cancelling) the side job under `key`; raises
        HetaError (QueueFull, ClientLimited) when refused. `on_done(result)` when it is done.
        `rated`: a user's own request (a rate token, and it counts toward the client's jobs at
        once); the automatic follow-ups of one (time estimate, logit lens) do neither."""
        job = self._submit(fn, kind, rated, texts)
        old = self.side.get(key)
        if old is not None:
            self.state.queue.cancel(old[0].id)
        self.side[key] = (job, on_done, show_errors)

    def _submit(self, fn, kind: str, rated: bool = True, texts: tuple[str, ...] = ()):
        """Submit through the client's limits (the API's): a user's own request (`rated`) takes a rate
        token and counts toward the client's jobs at once. The page's automatic follow-ups (time
        estimate, logit lens) are outside both: the page keeps at most one per kind (a new one
        cancels the old), so they cannot fill the queue, and counting them refused the user's own
        Explain while an estimate was still being cancelled. Texts stay out of the logs until the
        job ends (as the API's jobs)."""
        limiter, queue = self.state.limiter, self.state.queue
        alive = lambda job_id: (queue.get(job_id) is not None and queue.get(job_id).state not in FINISHED)  # noqa: E731
        counted = limiter is not None and rated
        if counted:
            wait = limiter.take(self.client)
            if wait > 0:
                raise ClientLimited.rate(wait)
            cap = limiter.limits.concurrent_jobs
            if limiter.active_jobs(self.client, alive) >= cap:
                raise ClientLimited.jobs(cap)
        texts = tuple(dict.fromkeys((*texts, *job_texts(self.ps))))
        job = self.state.submit(fn, texts=texts, kind=kind, owner=self.client, surface="gui")
        if counted:
            limiter.start_job(self.client, job.id, alive)
        return job

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


def page_client(state: AppState) -> str:
    """The page's client, named as the API names it (the API's own `client_of`, once registered:
    one trust decision about proxies for both surfaces), else the socket address."""
    request = getattr(ui.context.client, "request", None)
    if request is None:
        return "unknown"
    if state.client_of is not None:
        return state.client_of(request)
    return request.client.host if request.client else "unknown"


def remember_token(job) -> bool:
    """Keep `job`'s token in this tab's storage (False without a socket connection yet)."""
    try:
        tokens = app.storage.tab.setdefault(TOKENS_KEY, {})
    except RuntimeError:
        return False
    tokens[job.id] = job.token
    for old in list(tokens)[:-MAX_KEPT_TOKENS]:
        tokens.pop(old, None)
    return True


def saved_token(job_id: str) -> str | None:
    """The token this tab kept for `job_id` (None: none, or no socket connection yet)."""
    try:
        return (app.storage.tab.get(TOKENS_KEY) or {}).get(job_id)
    except RuntimeError:
        return None


def job_texts(ps: PageState | None) -> tuple[str, ...]:
    """The prompt of the page's current tokens: what explanations and the side views work on, kept
    out of the logs while any of this page's jobs runs (panels pass their other texts explicitly)."""
    prompt = getattr(getattr(ps, "ctx", None), "prompt", None)
    return (prompt,) if isinstance(prompt, str) and prompt else ()


def stage_text(job) -> str:
    if not job.stage:
        return "starting"
    return f"{job.stage} {job.done}/{job.total}" if job.total > 1 else job.stage
