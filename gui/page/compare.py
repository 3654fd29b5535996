"""Compare two prompts: the first generated token of each, explained side by side."""
from __future__ import annotations

import html
from typing import Callable

from nicegui import ui

from heta_lite.errors import HetaError
from heta_lite.targets import TargetSpec

from ..state import AppState
from ..views import heatmap_html
from .prompt import PromptPanel
from .runner import JobRunner


def compare_summary(ra: dict, rb: dict) -> str:
    """One paragraph: each prompt's prediction, the change in p of A's prediction, and the most
    influential tokens of each."""
    ta, tb = ra["target"], rb["target"]
    top = lambda r: ", ".join(f"“{t['display']}”" for t in r["summary"]["top"][:3])  # noqa: E731
    text = f"A predicts “{ta['display']}” (p {ta['prob']:.3f}); B predicts “{tb['display']}” (p {tb['prob']:.3f}). "
    if ta["id"] == tb["id"]:
        text += f"Same token; p changes by {tb['prob'] - ta['prob']:+.3f}. "
    else:
        in_b = next((a for a in tb["alternatives"] if a["id"] == ta["id"]), None)
        text += (f"Different tokens: B gives A's “{ta['display']}” p {in_b['prob']:.3f} "
                 f"({in_b['prob'] - ta['prob']:+.3f}). " if in_b else
                 f"Different tokens: A's “{ta['display']}” is not in B's top-5. ")
    return text + f"Most influential: A {top(ra)} · B {top(rb)}."


class ComparePanel:
    def __init__(self, state: AppState, runner: JobRunner, show_error: Callable[[str | None], None],
                 prompt: PromptPanel) -> None:
        self.state, self.runner, self.show_error, self.prompt = state, runner, show_error, prompt
        with ui.expansion("Compare two prompts", icon="compare").classes("w-full"):
            ui.label("Explain the first generated token of two prompts side by side, e.g. two phrasings of a "
                     "question (uses the quality and chat template settings above). To correct the model's answer "
                     "and see both answers explained, use 'Correct the answer' after Generate.") \
                .classes("text-sm text-gray-600")
            with ui.row().classes("w-full no-wrap gap-4"):
                self.a = ui.textarea("Prompt A").classes("w-1/2").props("outlined autogrow").mark("compare-a")
                self.b = ui.textarea("Prompt B").classes("w-1/2").props("outlined autogrow").mark("compare-b")
            ui.button("Compare", on_click=self.start).props("outline").mark("compare-btn")
            self.summary = ui.label("").classes("font-medium")
            with ui.row().classes("w-full no-wrap gap-4 items-start"):
                self.html_a = ui.html("", sanitize=False).classes("w-1/2 min-w-0")
                self.html_b = ui.html("", sanitize=False).classes("w-1/2 min-w-0")

    def start(self) -> None:
        state, show_error = self.state, self.show_error
        if not state.ready:
            show_error(state.public_load_error or "The model is still loading; try again in a moment.")
            return
        a, b = self.a.value or "", self.b.value or ""
        if not a.strip() or not b.strip():
            show_error("Type both prompts to compare.")
            return
        show_error(None)
        from heta_lite.engine import explain

        try:
            lm = self.prompt.lm_now()
        except HetaError as err:
            show_error(str(err))
            return
        s, cache = self.prompt.settings(), state.cache
        spec = TargetSpec(generated=0, max_new_tokens=1, chat=self.prompt.chat_on(lm))

        def job(control):
            return (explain(lm, a, spec, s, control=control, cache=cache),
                    explain(lm, b, spec, s, control=control, cache=cache))

        self.runner.submit(job, "compare", self.show, texts=(a, b))

    def show(self, pair) -> None:
        from heta_lite.report import Report

        ra, rb = (Report.from_explanation(e).to_dict() for e in pair)
        ta, tb = ra["target"], rb["target"]
        self.summary.text = compare_summary(ra, rb)
        self.html_a.content = (f"<div class='font-medium'>A → “{html.escape(ta['display'])}” p {ta['prob']:.3f}</div>"
                               + heatmap_html(ra))
        self.html_b.content = (f"<div class='font-medium'>B → “{html.escape(tb['display'])}” p {tb['prob']:.3f}</div>"
                               + heatmap_html(rb))
