"""The explain page, as components: prompt -> tokens -> pick a target -> explain (queued, with
progress) -> heatmap, ranked list, component strips, exports; plus correct-the-answer, explore,
compare, quantization, models and memory panels. This module only wires them; per-page data is a PageState, and one
JobRunner (one timer) follows the page's jobs. All model work goes through the app's JobQueue.
"""
from __future__ import annotations

from nicegui import ui

from ..state import AppState
from .compare import ComparePanel
from .correction import CorrectionPanel
from .explore import ExplorePanel
from .memory import MemoryPanel
from .models import ModelPanel
from .prompt import PromptPanel
from .quantization import QuantPanel
from .result import ResultPanel
from .runner import JobRunner, saved_token
from .state import PageState
from .theme import frame
from .tokens import TokenPicker

__all__ = ["build_page", "PageState"]


def build_page(state: AppState, job_id: str | None = None) -> PageState:
    """Build one client's page; the models and queue are shared, everything else is this page's.
    `job_id` (the URL's ?job=) re-attaches a reloaded page to its running or finished job, but
    only in the tab whose storage holds that job's token (runner.py): the id alone is no key."""
    ps = PageState()
    with frame(state) as f:
        runner = JobRunner(state, ps, f.show_error)
        prompt = PromptPanel(state, ps, runner, f.show_error)
        tokens = TokenPicker(state, ps, runner, f.show_error, prompt)
        runner.build_progress()
        result = ResultPanel(ps)
        correction = CorrectionPanel(state, ps, runner, f.show_error, prompt)
        explore = ExplorePanel(state, ps, runner, f.show_error)
        ComparePanel(state, runner, f.show_error, prompt)
        QuantPanel(state, runner, f.show_error, prompt)
        ModelPanel(state, ui.context.client.request, f.show_error, runner)
        MemoryPanel(ps, runner)

    prompt.on_tokens = lambda ctx: (tokens.show(ctx), correction.show_answer(ctx))
    tokens.on_explained = result.show
    result.on_shown = lambda report: (tokens.explain_btn.enable(), explore.start_lens(report))
    runner.on_failure = tokens.explain_btn.enable
    runner.every(0, prompt.refresh_run_on)  # every tick: 'Run on' and the header follow the registry
    runner.every(0, f.refresh_model)
    if job_id:
        def reattached(exp) -> None:
            tokens.show(exp.context)
            tokens.pick(exp.context.target_pos)
            result.show(exp)

        tried: list[bool] = []

        def reattach() -> None:  # once connected: the tab's storage (which holds the token) is readable then
            if tried:
                return  # a reconnect of this page: it already follows (or showed) the job
            tried.append(True)
            job = state.queue.owned(job_id, saved_token(job_id))
            if job is None:  # unknown, expired, or not this tab's: the id alone reveals nothing
                f.show_error("That job is no longer known to the server (it expired, or the server restarted), or "
                             "it was started in another tab; explain again.")
            elif job.surface == "api" or job.kind != "explain":
                f.show_error("That job was not started by this page's Explain (an API job's report is at "
                             "GET /api/v1/jobs/{id} with its X-Job-Token); explain again here.")
            else:
                runner.attach(job, reattached)

        ui.context.client.on_connect(reattach)
    return ps
