"""'Compare quantization modes': one prompt's first generated token explained in two loaded
modes. The context (and so the target) comes from mode A; mode B explains the same ids, so the
two heatmaps cover the same tokens and the agreement is over the same positions."""
from __future__ import annotations

from typing import Callable

from nicegui import ui

from ..quant_view import agreement_html, mode_agreement, mode_header
from ..state import AppState
from ..views import heatmap_html
from .models import ready_options
from .prompt import PromptPanel
from .runner import JobRunner


class QuantPanel:
    def __init__(self, state: AppState, runner: JobRunner, show_error: Callable[[str | None], None],
                 prompt: PromptPanel) -> None:
        self.state, self.runner, self.show_error, self.prompt = state, runner, show_error, prompt
        with ui.expansion("Compare quantization modes", icon="compare_arrows").classes("w-full").mark("quant-panel"):
            ui.label("Explain one prompt in two loaded modes side by side (load a second mode in 'Models and "
                     "quantization' first). B explains the token A generated, so both cover the same tokens.") \
                .classes("text-sm text-gray-600")
            self.text = ui.textarea("Prompt").classes("w-full").props("outlined autogrow").mark("quant-prompt")
            with ui.row().classes("items-end gap-3"):
                self.sel_a = ui.select({}, label="Mode A").classes("w-72").mark("quant-a")
                self.sel_b = ui.select({}, label="Mode B").classes("w-72").mark("quant-b")
                ui.button("Compare modes", on_click=self.start).props("outline").mark("quant-compare-btn")
            self.agree_html = ui.html("", sanitize=False).mark("quant-agreement")
            with ui.row().classes("w-full no-wrap gap-4 items-start"):
                self.side_a = ui.html("", sanitize=False).classes("w-1/2 min-w-0").mark("quant-side-a")
                self.side_b = ui.html("", sanitize=False).classes("w-1/2 min-w-0").mark("quant-side-b")
        self.refresh_options()
        runner.every(1.0, self.refresh_options)

    def refresh_options(self) -> None:
        opts = ready_options(self.state)
        for sel, default_index in ((self.sel_a, 0), (self.sel_b, 1)):
            if sel.options != opts:
                sel.options = opts
                keys = list(opts)
                if sel.value not in opts:
                    sel.value = keys[min(default_index, len(keys) - 1)] if keys else None
                sel.update()

    def start(self) -> None:
        state, show_error, sel_a, sel_b = self.state, self.show_error, self.sel_a, self.sel_b
        text = self.text.value or ""
        if not text.strip():
            show_error("Type a prompt to compare modes.")
            return
        if not sel_a.value or not sel_b.value or sel_a.value == sel_b.value:
            show_error("Pick two different loaded modes (load another mode under 'Models and quantization').")
            return
        try:
            lm_a, lm_b = (state.get(*sel.value.split("|", 1)) for sel in (sel_a, sel_b))
        except Exception as err:  # noqa: BLE001 - ModelNotLoaded: unloaded since the list was drawn
            show_error(str(err))
            return
        show_error(None)
        from heta_lite.engine import explain_context, make_context
        from heta_lite.targets import TargetSpec

        s, cache = self.prompt.settings(), state.cache
        spec = TargetSpec(generated=0, max_new_tokens=1, chat=self.prompt.chat_on(lm_a))

        def job(control):
            ctx = make_context(lm_a, text, spec, s, cache)
            ea = explain_context(lm_a, ctx, s, "heta", control=control, cache=cache)
            eb = explain_context(lm_b, ctx, s, "heta", control=control, cache=cache)
            return ea, eb

        self.runner.submit(job, "compare", self.show, texts=(text,))

    def show(self, pair) -> None:
        from heta_lite.report import Report

        ea, eb = pair
        ra, rb = Report.from_explanation(ea).to_dict(), Report.from_explanation(eb).to_dict()
        self.agree_html.content = ("<div class='font-medium'>Agreement of B with A over the scored tokens</div>"
                                   + agreement_html(mode_agreement(ea, eb)))
        self.side_a.content = mode_header(ra) + heatmap_html(ra)
        self.side_b.content = mode_header(rb) + heatmap_html(rb)
