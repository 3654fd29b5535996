"""Side-by-side view of one prompt explained in two quantization modes, with their agreement.

The numbers are the same as `heta-lite quant-compare` computes per item (quant.agreement over
the scored tokens), so what a user sees here and what the comparison runs report match.
"""
from __future__ import annotations

import html
from typing import Callable

import numpy as np

from quant.agreement import agreement

COMPONENT_NAMES = {"final": "final score", "M": "M gate", "S": "S curvature", "I": "I information"}


def mode_agreement(exp_a, exp_b) -> dict[str, dict[str, float]]:
    """{component: Agreement.to_dict()} for two explanations of the same context."""
    if list(exp_a.context.input_ids) != list(exp_b.context.input_ids):
        raise ValueError("the two explanations have different contexts")
    scored = np.asarray(exp_a.context.scored, bool)
    out = {"final": agreement(exp_a.scores, exp_b.scores, scored).to_dict()}
    for k in ("M", "S", "I"):
        ca, cb = exp_a.result.components.get(k), exp_b.result.components.get(k)
        if ca is not None and cb is not None:
            out[k] = agreement(ca.raw, cb.raw, scored).to_dict()
    return out


def _num(v: float) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3f}"


def agreement_html(agree: dict[str, dict[str, float]]) -> str:
    rows = "".join(
        f"<tr><td>{COMPONENT_NAMES[k]}</td><td>{_num(a['spearman'])}</td><td>{_num(a['kendall'])}</td>"
        f"<td>{_num(a['top5'])}</td><td>{_num(a['top10'])}</td></tr>" for k, a in agree.items())
    return ("<table class='heta-agree'><tr><th></th><th>Spearman</th><th>Kendall</th><th>top-5 overlap</th>"
            f"<th>top-10 overlap</th></tr>{rows}</table>")


def mode_header(report: dict) -> str:
    """'4bit-nf4 → “Paris” p 0.912 · gradients through the dequantized weights' for one side."""
    q = report["model"]["quantization"]
    t = report["target"]
    d = report.get("derivatives") or {}
    path = {"quantized-layers": "gradients through the quantized layers (checked)",
            "dequantized-weights": "gradients through the dequantized weights (fallback)"}.get(d.get("path"), "")
    took = report["timings_s"].get("attribution_total")
    return (f"<div class='font-medium'>{html.escape(q)} → “{html.escape(t['display'])}” p {t['prob']:.3f}"
            + (f" · {took:.1f} s" if took is not None else "") + "</div>"
            + (f"<div class='text-xs text-gray-600' title='{html.escape(d.get('reason', ''))}'>{path}</div>"
               if path else ""))


def build_quant_panel(state, submit: Callable, show_error: Callable[[str | None], None], settings_fn: Callable,
                      chat_fn: Callable[[], bool]) -> None:
    """'Compare quantization modes': one prompt's first generated token explained in two loaded
    modes. The context (and so the target) comes from mode A; mode B explains the same ids, so the
    two heatmaps cover the same tokens and the agreement is over the same positions."""
    from nicegui import ui

    from .model_panel import ready_options

    with ui.expansion("Compare quantization modes", icon="compare_arrows").classes("w-full").mark("quant-panel"):
        ui.label("Explain one prompt in two loaded modes side by side (load a second mode in 'Models and "
                 "quantization' first). B explains the token A generated, so both cover the same tokens.") \
            .classes("text-sm text-gray-600")
        q_prompt = ui.textarea("Prompt").classes("w-full").props("outlined autogrow").mark("quant-prompt")
        with ui.row().classes("items-end gap-3"):
            sel_a = ui.select({}, label="Mode A").classes("w-72").mark("quant-a")
            sel_b = ui.select({}, label="Mode B").classes("w-72").mark("quant-b")
            ui.button("Compare modes", on_click=lambda: start()).props("outline").mark("quant-compare-btn")
        agree_html = ui.html("", sanitize=False).mark("quant-agreement")
        with ui.row().classes("w-full no-wrap gap-4 items-start"):
            side_a = ui.html("", sanitize=False).classes("w-1/2 min-w-0").mark("quant-side-a")
            side_b = ui.html("", sanitize=False).classes("w-1/2 min-w-0").mark("quant-side-b")

    def refresh_options() -> None:
        opts = ready_options(state)
        for sel, default_index in ((sel_a, 0), (sel_b, 1)):
            if sel.options != opts:
                sel.options = opts
                keys = list(opts)
                if sel.value not in opts:
                    sel.value = keys[min(default_index, len(keys) - 1)] if keys else None
                sel.update()

    def start() -> None:
        text = q_prompt.value or ""
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

        s = settings_fn()
        spec = TargetSpec(generated=0, max_new_tokens=1,
                          chat=bool(chat_fn()) if getattr(lm_a.tokenizer, "chat_template", None) else False)

        def job(control):
            ctx = make_context(lm_a, text, spec, s, state.cache)
            ea = explain_context(lm_a, ctx, s, "heta", control=control, cache=state.cache)
            eb = explain_context(lm_b, ctx, s, "heta", control=control, cache=state.cache)
            return ea, eb

        submit(job, "compare", show)

    def show(pair) -> None:
        from heta_lite.report import build_report

        from .views import heatmap_html

        ea, eb = pair
        ra, rb = build_report(ea), build_report(eb)
        agree_html.content = ("<div class='font-medium'>Agreement of B with A over the scored tokens</div>"
                              + agreement_html(mode_agreement(ea, eb)))
        side_a.content = mode_header(ra) + heatmap_html(ra)
        side_b.content = mode_header(rb) + heatmap_html(rb)

    refresh_options()
    ui.timer(1.0, refresh_options)
