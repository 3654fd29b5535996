"""Explore: the next-token chart, the logit lens, the attention from the predicting position and
head importance, for the explained target (side jobs on the queue)."""
from __future__ import annotations

from typing import Callable

from nicegui import ui

from heta_lite.errors import HetaError

from ..state import AppState
from ..views import attention_html, head_importance_chart, logit_lens_chart, next_token_chart
from .runner import JobRunner
from .state import PageState


class ExplorePanel:
    def __init__(self, state: AppState, ps: PageState, runner: JobRunner,
                 show_error: Callable[[str | None], None]) -> None:
        self.state, self.ps, self.runner, self.show_error = state, ps, runner, show_error
        with ui.expansion("Explore: next token, logit lens, attention and heads", icon="travel_explore") \
                .classes("w-full").mark("explore"):
            self.info = ui.label("Explain a token first; these views then fill in for its position.") \
                .classes("text-sm")
            ui.label("Next token: the model's top-10 at the target position (the target in blue)") \
                .classes("font-medium")
            self.next_chart = ui.echart({"series": []}).classes("w-full h-64")
            ui.label("Logit lens: each layer's guess, reading its hidden state through the final norm and "
                     "LM head").classes("font-medium")
            self.lens_chart = ui.echart({"series": []}).classes("w-full h-56")
            self.lens_table = ui.table(columns=[{"name": "layer", "label": "layer", "field": "layer"},
                                                {"name": "p", "label": "p(target)", "field": "p"},
                                                {"name": "top", "label": "the layer's top-3 (p)", "field": "top",
                                                 "align": "left"}], rows=[],
                                       row_key="layer", pagination=10).props("dense flat")
            ui.label("Attention from the predicting position (the token just before the target)") \
                .classes("font-medium")
            with ui.row().classes("items-center"):
                self.layer_sel = ui.select({0: "layer 0"}, value=0, label="Layer").classes("w-32")
                self.head_sel = ui.select({-1: "mean of heads"}, value=-1, label="Head").classes("w-36")
                ui.button("Show attention", on_click=self.start_attention).props("outline").mark("attn-btn")
            self.attn_html = ui.html("", sanitize=False).mark("attention")
            ui.label("Head importance: how much log p(target) drops when one head is switched off (one batched "
                     "forward per layer)").classes("font-medium")
            ui.button("Compute head importance", on_click=self.start_heads).props("outline").mark("heads-btn")
            self.heads_chart = ui.echart({"series": []}).classes("w-full h-96").mark("heads")
            self.heads_chart.set_visibility(False)  # no blank space before there is something to show

    def start_lens(self, report: dict) -> None:
        from heta_lite.explore import logit_lens, next_token

        lm, ids, y = self.ps.page_lm(self.state), self.ps.exp.context.input_ids, report["target"]["id"]
        self.heads_chart.set_visibility(False)  # it was for the previous target
        self.head_sel.options = {-1: "mean of heads", **{h: f"head {h}" for h in range(lm.dims.num_heads)}}
        self.head_sel.update()
        n_layers = len(lm.arch.blocks(lm.model))
        self.layer_sel.options = {i: f"layer {i}" + (" (last)" if i == n_layers - 1 else "") for i in range(n_layers)}
        self.layer_sel.value = n_layers - 1
        self.layer_sel.update()
        self.ps.lens_target = y

        def job(control):
            control.step("logit lens", 0, 2)
            rows = logit_lens(lm, ids, y)
            control.step("next token", 1, 2)
            return {"lens": rows, "next": next_token(lm, ids, 10)}

        try:
            self.runner.submit_side("lens", job, "explore", self.show_lens)
        except HetaError:
            return

    def start_attention(self) -> None:
        exp = self.ps.exp
        if exp is None:
            self.show_error("Explain a token first.")
            return
        from heta_lite.explore import attention_from_target

        lm, ids = self.ps.page_lm(self.state), exp.context.input_ids
        layer = int(self.layer_sel.value or 0)
        head = None if self.head_sel.value in (-1, None) else int(self.head_sel.value)

        def job(control):
            try:
                return attention_from_target(lm, ids, layer, head)
            except (IndexError, TypeError) as err:  # SDPA returns no attention weights
                raise HetaError("This model's attention implementation does not return attention weights; "
                                "load it with eager attention to use this view.") from err

        try:
            self.runner.submit_side("attention", job, "explore", self.show_attention, rated=True)
        except HetaError as err:
            self.show_error(str(err))

    def start_heads(self) -> None:
        exp = self.ps.exp
        if exp is None:
            self.show_error("Explain a token first.")
            return
        from heta_lite.heads import head_importance

        lm, ids, y = self.ps.page_lm(self.state), list(exp.context.input_ids), exp.context.target_id
        try:
            self.runner.submit_side("heads", lambda control: head_importance(lm, ids, y, control), "explore",
                                    lambda heads: self.show_heads(heads, exp), rated=True)
        except HetaError as err:
            self.show_error(str(err))

    def show_heads(self, heads, exp=None) -> None:
        """The chart; and the report the page downloads gets `head_importance` when it is still the
        explanation the heads were computed for."""
        if exp is not None and self.ps.exp is exp and self.ps.report is not None:
            self.ps.report["head_importance"] = heads.to_dict()
        self.heads_chart.options.clear()
        self.heads_chart.options.update(head_importance_chart(heads.drop))
        self.heads_chart.set_visibility(True)
        self.heads_chart.update()

    def show_lens(self, res: dict) -> None:
        rows = res["lens"]
        self.info.text = ("For the target position: what the model would predict next (top), and how each layer's "
                          "guess develops (below).")
        self.next_chart.options.clear()
        self.next_chart.options.update(next_token_chart(res["next"], self.ps.lens_target))
        self.next_chart.update()
        self.lens_chart.options.clear()
        self.lens_chart.options.update(logit_lens_chart(rows))
        self.lens_chart.update()
        self.lens_table.rows = [{"layer": r["layer"], "p": f"{r['p_target']:.3f}",
                                 "top": "   ".join(f"“{t['text']}” {t['prob']:.2f}" for t in r["top"])} for r in rows]

    def show_attention(self, row) -> None:
        self.attn_html.content = attention_html(self.ps.exp.context.context_tokens, row)
