"""Correct the answer (issue #17 item 1): after Generate, the user types a correction; the model
answers again in the conversation question, answer, correction, and the page shows before and
after side by side: the heatmaps of both first answer tokens, their top-5 and their logit lens,
under a one-line summary of what changed (heta_lite/correction.py computes it all)."""
from __future__ import annotations

import html
from typing import Callable

from nicegui import ui

from heta_lite.errors import HetaError

from ..state import AppState
from ..views import heatmap_html, logit_lens_chart
from .prompt import PromptPanel
from .runner import JobRunner
from .state import PageState

MAX_CORRECTION_CHARS = 2000


def top5_html(side: dict) -> str:
    """The top-5 next tokens of one side (the explained first answer token in bold)."""
    rows = "".join(
        f"<tr><td>{'<b>' if a['text'] == side['target'] else ''}{html.escape(a['text'])}"
        f"{'</b>' if a['text'] == side['target'] else ''}</td><td class='text-right'>{a['prob']:.3f}</td></tr>"
        for a in side["top5"])
    return f"<table class='text-sm'><tr><th class='text-left'>top-5</th><th>p</th></tr>{rows}</table>"


class CorrectionPanel:
    def __init__(self, state: AppState, ps: PageState, runner: JobRunner, show_error: Callable[[str | None], None],
                 prompt: PromptPanel) -> None:
        self.state, self.ps, self.runner, self.show_error, self.prompt = state, ps, runner, show_error, prompt
        with ui.card().classes("w-full").mark("correction") as self.card:
            ui.label("Correct the answer").classes("font-medium")
            self.answer = ui.label("").classes("text-sm").mark("first-answer")
            self.text = ui.textarea("Your correction", placeholder="e.g. No, that is wrong. Think again.") \
                .classes("w-full").props(f"outlined autogrow maxlength={MAX_CORRECTION_CHARS}").mark("correction-text")
            ui.button("Answer again and compare", on_click=self.start).props("outline").mark("correct-btn")
            self.summary = ui.label("").classes("font-medium").mark("correction-summary")
            with ui.row().classes("w-full no-wrap gap-4 items-start") as self.sides:
                self.cols = []
                for name in ("Before", "After"):
                    with ui.column().classes("w-1/2 min-w-0"):
                        title = ui.label("").classes("font-medium").mark(f"correction-{name.lower()}")
                        heat = ui.html("", sanitize=False)
                        top5 = ui.html("", sanitize=False)
                        lens = ui.echart({"series": []}).classes("w-full h-48")
                        lens.set_visibility(False)
                        self.cols.append((name, title, heat, top5, lens))
        self.sides.set_visibility(False)  # no blank space before there is a comparison
        self.card.set_visibility(False)

    def show_answer(self, ctx) -> None:
        """A new generation: offer the correction box for its answer (only after Generate)."""
        self.summary.text = ""
        self.sides.set_visibility(False)
        for _, title, heat, top5, lens in self.cols:
            title.text, heat.content, top5.content = "", "", ""
            lens.set_visibility(False)
        answer = ctx.generated_text
        self.card.set_visibility(bool(answer.strip()) and ctx.conversation is None)
        self.answer.text = f"The model answered: “{answer.strip()[:300]}”"

    def start(self) -> None:
        ctx, show_error = self.ps.ctx, self.show_error
        correction = (self.text.value or "").strip()
        if ctx is None or not ctx.generated_ids:
            show_error("Generate an answer first; then correct it here.")
            return
        if not correction:
            show_error("Type a correction first, e.g. “No, that is wrong. Think again.”")
            return
        if len(correction) > MAX_CORRECTION_CHARS:
            show_error(f"The correction has {len(correction):,} characters; the limit is {MAX_CORRECTION_CHARS:,}.")
            return
        show_error(None)
        from heta_lite.correction import correct_and_compare

        lm = self.ps.page_lm(self.state)
        if lm is None:
            show_error("The model is not loaded; try again in a moment.")
            return
        question, chat, n_new = ctx.prompt, ctx.chat, max(1, len(ctx.generated_ids))
        settings, method, cache = self.prompt.settings(), self.prompt.method.value, self.state.cache

        def job(control):
            return correct_and_compare(lm, question, correction, settings, method, n_new, chat, control, cache)

        answer = ctx.generated_text
        try:
            self.runner.submit(job, "compare", self.show, texts=(question, correction, answer))
        except HetaError as err:  # submit shows refusals itself; anything else is a bug worth showing
            show_error(str(err))

    def show(self, cmp) -> None:
        from heta_lite.report import Report

        self.summary.text = "What changed: " + cmp.summary()
        self.sides.set_visibility(True)
        d = cmp.to_dict()
        for (name, title, heat, top5, lens), side, key in zip(self.cols, (cmp.before, cmp.after), ("before", "after")):
            report = Report.from_explanation(side.explanation).to_dict()
            s = d[key]
            title.text = f"{name}: “{side.answer[:120]}” · first token {s['target']} p {s['prob']:.3f}"
            heat.content = heatmap_html(report)
            top5.content = top5_html(s)
            lens.options.clear()
            lens.options.update(logit_lens_chart(side.lens))
            lens.set_visibility(True)
            lens.update()
