"""The explain page, as components: prompt -> tokens -> pick a target -> explain (queued, with
progress) -> heatmap, ranked list, component strips, exports; plus explore, compare, quantization,
models and memory panels. This module only wires them; per-page data is a PageState, and one
JobRunner (one timer) follows the page's jobs. All model work goes through the app's JobQueue.
"""
from __future__ import annotations

from nicegui import ui

from ..state import AppState
from .compare import ComparePanel
from .explore import ExplorePanel
from .memory import MemoryPanel
from .models import ModelPanel
from .prompt import PromptPanel
from .quantization import QuantPanel
from .result import ResultPanel
from .runner import JobRunner
from .state import PageState
from .theme import frame
from .tokens import TokenPicker

__all__ = ["build_page", "PageState"]


def build_page(state: AppState, job_id: str | None = None) -> PageState:
    """Build one client's page; the models and queue are shared, everything else is this page's.
    `job_id` (the URL's ?job=) re-attaches a reloaded page to its running or finished job."""
    ps = PageState()
    with frame(state) as f:
        runner = JobRunner(state, ps, f.show_error)
        prompt = PromptPanel(state, ps, runner, f.show_error)
        tokens = TokenPicker(state, ps, runner, f.show_error, prompt)
        runner.build_progress()
        result = ResultPanel(ps)
        explore = ExplorePanel(state, ps, runner, f.show_error)
        ComparePanel(state, runner, f.show_error, prompt)
        QuantPanel(state, runner, f.show_error, prompt)
        ModelPanel(state, ui.context.client.request, f.show_error, runner)
        MemoryPanel(ps, runner)

    prompt.on_tokens = tokens.show
    tokens.on_explained = result.show
    result.on_shown = lambda report: (tokens.explain_btn.enable(), explore.start_lens(report))
    runner.on_failure = tokens.explain_btn.enable
    runner.every(0, prompt.refresh_run_on)  # every tick: 'Run on' and the header follow the registry
    runner.every(0, f.refresh_model)
    if job_id:
        job = state.queue.get(job_id)
        if job is None:
            f.show_error("That job is no longer known to the server (it restarted or the job expired); "
                         "explain again.")
        elif job.kind == "explain":
            def reattached(exp) -> None:
                tokens.show(exp.context)
                tokens.pick(exp.context.target_pos)
                result.show(exp)

            runner.attach(job, reattached)
    return ps
