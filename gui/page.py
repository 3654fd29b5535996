"""The explain page: prompt -> tokens -> pick a target -> explain (queued, with progress) ->
heatmap, ranked list, component strips, exports; plus exploring and memory panels.

All model work goes through the app's JobQueue; the event loop only polls job state.
"""
from __future__ import annotations

import html
import time
from typing import Any

from nicegui import ui

from heta_lite.errors import HetaError
from heta_lite.jobs import CANCELLED, DONE, FAILED, FINISHED, QueueFull
from heta_lite.settings import GATES, QUALITIES, HetaSettings
from heta_lite.targets import TargetSpec

from .model_panel import build_model_panel, ready_options
from .quant_view import build_quant_panel
from .state import AppState
from .views import (FRAME_TIP, attention_html, check_html, heatmap_html, legend_html, logit_lens_chart, memory_chart,
                    next_token_chart, strips_html)

# (prompt, chat template on?): completions read best without the chat template, questions with it
EXAMPLES = [
    ("The capital of France is", False),
    ("Alice gave Bob her umbrella because it was raining. Who was getting wet?", True),
    ("The chemical symbol for gold is", False),
    ("def fibonacci(n):\n    if n < 2:\n        return", False),
]

CSS = """
.heta-heatmap { font-family: 'DejaVu Sans Mono', monospace; line-height: 2.1; font-size: 15px; }
.heta-tok { display: inline-block; line-height: 1.5; padding: 0 3px; margin: 2px 1px; border-radius: 3px; cursor: help; white-space: pre; }
.heta-target { padding: 2px 4px; margin: 1px; border: 2px solid #1f4fd1; color: #1f4fd1; border-radius: 3px; }
.tok-chip { font-family: 'DejaVu Sans Mono', monospace; text-transform: none; }
.tok-chip { background: #f1f5f9; margin: 1px !important; font-size: 13px !important; }
.tok-chip.generated { background: #ede9fe; }
.tok-chip.picked { box-shadow: inset 0 0 0 2px #1f4fd1; background: #dbeafe !important; }
.heta-strips { font-family: 'DejaVu Sans Mono', monospace; font-size: 13px; line-height: 1.9; }
.heta-strip { margin-bottom: 2px; }
.heta-strip-name { display: inline-block; width: 1.6em; font-weight: bold; cursor: help; }
.heta-legend { margin-top: 4px; }
.heta-tok[data-tip], .heta-target[data-tip] { position: relative; }
.heta-tok[data-tip]:hover::after, .heta-target[data-tip]:hover::after {
  content: attr(data-tip); position: absolute; left: 0; top: 115%; z-index: 50; width: max-content; max-width: 460px;
  white-space: pre-line; background: #1e293b; color: #fff; padding: 5px 8px; border-radius: 5px;
  font-size: 12px; line-height: 1.45; font-family: 'DejaVu Sans Mono', monospace; pointer-events: none; }
.heta-tok[data-tip]:hover { outline: 2px solid #1e293b; }
"""


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


JOB_WORDS = {"explain": "Explaining", "generate": "Generating", "compare": "Comparing", "explore": "Exploring",
             "estimate": "Estimating the time"}


def build_page(state: AppState, job_id: str | None = None) -> None:
    """Build one client's page. Per-page state lives in `page`; the model and queue are shared.
    `job_id` (the URL's ?job=) re-attaches a reloaded page to its running or finished job."""
    ui.add_css(CSS)
    page: dict[str, Any] = {"ctx": None, "target": None, "job": None, "report": None, "exp": None, "samples": [],
                            "chips": {}}

    with ui.header(fixed=False).classes("items-center justify-between bg-slate-800"):
        ui.label("HETA Lite — why did the model predict this token?").classes("text-lg font-bold")
        model_label = ui.label("loading model…").classes("text-sm").props("id=model-label")

    with ui.column().classes("w-full max-w-6xl mx-auto gap-3 p-2"):
        error_box = ui.label("").classes("text-red-700 font-medium").props("id=error-box")
        error_box.set_visibility(False)
        with ui.row().classes("items-center gap-2 text-gray-700") as loading_row:
            ui.spinner(size="sm")
            ui.label(f"Loading the model ({state.model_name}); the first start can take a minute. "
                     "You can type a prompt meanwhile.")
        loading_row.set_visibility(not state.ready)
        ui.label("1. Type a prompt (or click an example) and press Generate.  2. Click any token.  "
                 "3. Press Explain to see which earlier tokens made the model predict it.") \
            .classes("text-sm text-gray-700")
        with ui.card().classes("w-full"):
            prompt = ui.textarea("Prompt", placeholder="Type or paste a prompt, or pick an example below") \
                .classes("w-full").props("outlined autogrow id=prompt").mark("prompt")
            with ui.row().classes("gap-1 items-center"):
                ui.label("Examples:").classes("text-sm text-gray-600")
                for ex, ex_chat in EXAMPLES:
                    ui.button(ex.split("\n")[0][:38] + ("…" if len(ex) > 38 else ""),
                              on_click=lambda ex=ex, ex_chat=ex_chat: use_example(ex, ex_chat)) \
                        .props("outline rounded dense no-caps size=sm color=primary").classes("px-2")
            with ui.row().classes("items-center gap-4"):
                quality = ui.select({q: q for q in QUALITIES}, value=state.default_quality, label="Quality") \
                    .classes("w-32").props("id=quality")
                from heta_lite.methods import method_names

                method = ui.select(method_names(), value="heta", label="Method").classes("w-40") \
                    .tooltip("heta: Hessian-enhanced token attribution (M gate x (S curvature + I information)); "
                             "the others are baselines for comparison")
                run_on = ui.select(ready_options(state), label="Run on").classes("w-56").mark("run-on") \
                    .tooltip("which loaded model / quantization mode explains; load more under 'Models and "
                             "quantization'")
                chat = ui.switch("Chat template", value=False) \
                    .tooltip("On: the prompt is sent as a user message to the assistant (good for questions). "
                             "Off: the model simply continues the text.")
                max_new = ui.number("New tokens", value=12, min=1, max=64, step=1).classes("w-28").mark("new-tokens")
                ui.button("Generate", on_click=lambda: start_generate()).props("id=generate").mark("generate")
            with ui.expansion("Advanced settings", icon="tune").classes("w-full").props("dense"):
                with ui.row().classes("items-center gap-4"):
                    frame_sel = ui.select({"auto": "auto (frame tokens first)", "none": "none (authors' setting)"},
                                          value="auto", label="Frame").classes("w-56").mark("frame") \
                        .tooltip("auto: the model sees a frame token (chat template opening, BOS or its document "
                                 "separator) before your text, so your first word is not the attention sink; "
                                 "none: nothing prepended, for comparison with the paper")
                    gate_sel = ui.select({g: g for g in GATES}, value="full", label="Gate").classes("w-40") \
                        .mark("gate").tooltip("rollout of the gate M: full (all layers), last-quarter (last "
                                              "quarter of the layers), norm-mixing (mixing by value norms)")
            estimate = ui.label("Expected time per quality appears after Generate (a rough estimate, measured on "
                                "this machine for your prompt's length).").classes("text-sm text-gray-600") \
                .mark("estimate")

        tokens_card = ui.card().classes("w-full")
        with tokens_card:
            ui.label("Click a token to explain why the model predicted it: grey = your prompt (the model is "
                     "shown the real text up to it), purple = what the model generated.") \
                .classes("text-sm text-gray-600")
            chips = ui.row().classes("gap-0 items-center")
            with ui.row().classes("items-center gap-3"):
                target_label = ui.label("No target yet").classes("font-medium")
                explain_btn = ui.button("Explain", on_click=lambda: start_explain()) \
                    .props("id=explain color=primary").mark("explain")
                explain_btn.disable()
        tokens_card.set_visibility(False)

        with ui.card().classes("w-full") as progress_card:
            with ui.row().classes("items-center w-full gap-3"):
                status = ui.label("").props("id=status")
                cancel_btn = ui.button("Cancel", on_click=lambda: cancel()).props("flat color=negative id=cancel") \
                    .mark("cancel")
            progress = ui.linear_progress(value=0, show_value=False).classes("w-full")
        progress_card.set_visibility(False)

        result_card = ui.card().classes("w-full")
        with result_card:
            summary = ui.label("").classes("text-base font-medium").props("id=summary")
            heat = ui.html("", sanitize=False).classes("w-full").mark("heatmap")
            check_line = ui.html("", sanitize=False).classes("text-sm").mark("check")
            ui.html(legend_html(), sanitize=False)
            with ui.row().classes("w-full gap-6 items-start"):
                with ui.column():
                    ui.label("Most influential tokens").classes("font-medium")
                    top_table = ui.table(columns=[
                        {"name": "rank", "label": "rank", "field": "rank"},
                        {"name": "token", "label": "token", "field": "token"},
                        {"name": "score", "label": "share", "field": "score"},
                        {"name": "pct", "label": "percentile", "field": "pct"}], rows=[], row_key="rank") \
                        .props("dense flat")
                with ui.column():
                    ui.label("What the model considered at this position").classes("font-medium")
                    alt_table = ui.table(columns=[{"name": "token", "label": "token", "field": "token"},
                                                  {"name": "p", "label": "p", "field": "p"}], rows=[],
                                         row_key="token").props("dense flat")
            ui.label("The three components, each as its own strip (darker = larger share; hover for raw values): "
                     "M gate (attention flow), S curvature (second-order sensitivity), I information "
                     "(what masking the token costs)").classes("font-medium")
            strips = ui.html("", sanitize=False).classes("w-full").mark("strips")
            settings_label = ui.label("").classes("text-xs text-gray-600")
            with ui.row():
                ui.button("Download JSON report", on_click=lambda: download_json()).props("outline id=dl-json")
                ui.button("Download PNG heatmap", on_click=lambda: download_png()).props("outline id=dl-png")
        result_card.set_visibility(False)

        with ui.expansion("Explore: next token, logit lens and attention", icon="travel_explore") \
                .classes("w-full").mark("explore"):
            lens_info = ui.label("Explain a token first; these views then fill in for its position.").classes("text-sm")
            ui.label("Next token: the model's top-10 at the target position (the target in blue)") \
                .classes("font-medium")
            next_chart = ui.echart({"series": []}).classes("w-full h-64")
            ui.label("Logit lens: each layer's guess, reading its hidden state through the final norm and "
                     "LM head").classes("font-medium")
            lens_chart = ui.echart({"series": []}).classes("w-full h-56")
            lens_table = ui.table(columns=[{"name": "layer", "label": "layer", "field": "layer"},
                                           {"name": "p", "label": "p(target)", "field": "p"},
                                           {"name": "top", "label": "the layer's top-3 (p)", "field": "top",
                                            "align": "left"}], rows=[],
                                  row_key="layer", pagination=10).props("dense flat")
            ui.label("Attention from the predicting position (the token just before the target)") \
                .classes("font-medium")
            with ui.row().classes("items-center"):
                layer_sel = ui.select({0: "layer 0"}, value=0, label="Layer").classes("w-32")
                head_sel = ui.select({-1: "mean of heads"}, value=-1, label="Head").classes("w-36")
                ui.button("Show attention", on_click=lambda: start_attention()).props("outline").mark("attn-btn")
            attn_html = ui.html("", sanitize=False).mark("attention")

        with ui.expansion("Compare two prompts", icon="compare").classes("w-full"):
            ui.label("Explain the first generated token of two prompts side by side, e.g. a question before and "
                     "after a correction such as 'No, think again: ...' (uses the quality and chat template "
                     "settings above).").classes("text-sm text-gray-600")
            with ui.row().classes("w-full no-wrap gap-4"):
                cmp_a = ui.textarea("Prompt A").classes("w-1/2").props("outlined autogrow").mark("compare-a")
                cmp_b = ui.textarea("Prompt B").classes("w-1/2").props("outlined autogrow").mark("compare-b")
            ui.button("Compare", on_click=lambda: start_compare()).props("outline").mark("compare-btn")
            cmp_summary = ui.label("").classes("font-medium")
            with ui.row().classes("w-full no-wrap gap-4 items-start"):
                cmp_html_a = ui.html("", sanitize=False).classes("w-1/2 min-w-0")
                cmp_html_b = ui.html("", sanitize=False).classes("w-1/2 min-w-0")

        build_quant_panel(state, lambda fn, kind, on_done: submit(fn, kind, on_done), lambda msg: show_error(msg),
                          lambda: settings(), lambda: bool(chat.value))
        build_model_panel(state, ui.context.client.request, lambda msg: show_error(msg))

        with ui.expansion("Memory", icon="memory").classes("w-full"):
            mem_label = ui.label("").classes("text-sm").props("id=mem-label")
            mem_chart = ui.echart(memory_chart([])).classes("w-full h-48")

    # -- helpers ---------------------------------------------------------------------------
    def show_error(msg: str | None) -> None:
        error_box.text = msg or ""
        error_box.set_visibility(bool(msg))

    def settings() -> HetaSettings:
        return HetaSettings.preset(quality.value, frame=frame_sel.value, gate=gate_sel.value)

    def lm_now():
        """The model picked under 'Run on' (the primary if none); ModelNotLoaded if it went away."""
        return state.get(*run_on.value.split("|", 1)) if run_on.value else state.get()

    def page_lm():
        """The model the current tokens were generated with: lens, attention and explain stay on it."""
        return page.get("lm") or state.lm

    def use_example(text: str, use_chat: bool) -> None:
        prompt.set_value(text)
        chat.set_value(use_chat)

    def submit(fn, kind: str, on_done) -> None:
        try:
            job = state.queue.submit(fn, kind=kind)
        except QueueFull as err:
            show_error(str(err))
            return
        attach(job, on_done)
        if kind == "explain":  # a reload of this URL re-attaches to the job
            ui.navigate.history.replace(f"/?job={job.id}")

    def attach(job, on_done) -> None:
        page["job"] = (job, on_done)
        progress_card.set_visibility(True)
        cancel_btn.enable()

    def start_compare() -> None:
        if not state.ready:
            show_error(state.load_error or "The model is still loading; try again in a moment.")
            return
        a, b = cmp_a.value or "", cmp_b.value or ""
        if not a.strip() or not b.strip():
            show_error("Type both prompts to compare.")
            return
        show_error(None)
        from heta_lite.engine import explain

        try:
            lm = lm_now()
        except HetaError as err:
            show_error(str(err))
            return
        s = settings()
        spec = TargetSpec(generated=0, max_new_tokens=1,
                          chat=bool(chat.value) if getattr(lm.tokenizer, "chat_template", None) else False)

        def job(control):
            return (explain(lm, a, spec, s, control=control, cache=state.cache),
                    explain(lm, b, spec, s, control=control, cache=state.cache))

        submit(job, "compare", show_compare)

    def show_compare(pair) -> None:
        from heta_lite.report import build_report

        ra, rb = (build_report(e) for e in pair)
        ta, tb = ra["target"], rb["target"]
        cmp_summary.text = compare_summary(ra, rb)
        cmp_html_a.content = (f"<div class='font-medium'>A → “{html.escape(ta['display'])}” p {ta['prob']:.3f}</div>"
                              + heatmap_html(ra))
        cmp_html_b.content = (f"<div class='font-medium'>B → “{html.escape(tb['display'])}” p {tb['prob']:.3f}</div>"
                              + heatmap_html(rb))

    def start_generate() -> None:
        show_error(None)
        if not state.ready:
            show_error(state.load_error or "The model is still loading; try again in a moment.")
            return
        text = prompt.value or ""
        if not text.strip():
            show_error("The prompt is empty; type some text or click an example.")
            return
        n_new = max_new.value
        if n_new is None or not float(n_new).is_integer() or not 1 <= int(n_new) <= 64:
            show_error(f"New tokens must be a whole number from 1 to 64, got {n_new}.")
            return
        page["estimate_key"] = None
        from heta_lite.engine import make_context

        try:
            lm = lm_now()
        except HetaError as err:
            show_error(str(err))
            return
        page["lm"] = lm
        spec = TargetSpec(generated=0, max_new_tokens=int(n_new), chat=bool(chat.value) if
                          getattr(lm.tokenizer, "chat_template", None) else False)
        s = settings()

        def job(control):
            control.step("generating", 0, 1)
            return make_context(lm, text, spec, s, state.cache)

        submit(job, "generate", show_tokens)

    def show_tokens(ctx) -> None:
        page["ctx"] = ctx
        page["chips"] = {}
        chips.clear()
        with chips:
            for tok in ctx.tokens:
                gen = tok.origin == "generated"
                colour_ = "color=deep-purple" if gen else ("color=grey-6" if tok.special else "color=grey-9")
                b = ui.button(tok.display or "·", on_click=lambda t=tok.index: pick(t)) \
                    .props(f"flat dense no-caps size=sm {colour_}") \
                    .classes("tok-chip" + (" generated" if gen else "")).props(f"data-index={tok.index}")
                if tok.origin == "frame":
                    b.tooltip(f"#{tok.index} · {FRAME_TIP} ({ctx.frame.why})")
                else:
                    b.tooltip(f"#{tok.index} · {'generated by the model' if gen else 'prompt'}"
                              + (" · template/special token" if tok.special else "") + " · click to explain it")
                page["chips"][tok.index] = b
                if tok.index == 0:
                    b.disable()
        tokens_card.set_visibility(True)
        pick(ctx.prompt_len if ctx.generated_ids else len(ctx.tokens) - 1)

    def pick(index: int) -> None:
        ctx = page["ctx"]
        if ctx is None:
            return
        try:
            if not any(ctx.with_target(index).scored):
                show_error("Nothing before this token can be scored (only template tokens); pick a later one.")
                return
        except HetaError as err:
            show_error(str(err))
            return
        show_error(None)
        old = page["chips"].get(page.get("target"))
        if old is not None:
            old.classes(remove="picked")
        if page["chips"].get(index) is not None:
            page["chips"][index].classes("picked")
        page["target"] = index
        tok = ctx.tokens[index]
        kind = "generated token" if index >= ctx.prompt_len else "prompt token"
        target_label.text = f"Target: '{tok.display}' ({kind} at position {index}, {index} tokens of context)"
        explain_btn.enable()
        start_estimate(index, sum(ctx.with_target(index).scored))

    def start_estimate(n: int, n_scored: int) -> None:
        """Expected seconds per preset for this length, from a one-time calibration on this machine."""
        from heta_lite.budget import calibrate, estimate_seconds

        lm = page_lm()
        if page.get("estimate_key") == (n, n_scored):
            return
        page["estimate_key"] = (n, n_scored)

        def job(control):
            cal = calibrate(lm, n)
            return {q: estimate_seconds(cal, n, n_scored, HetaSettings.preset(q))["total"] for q in QUALITIES}

        try:
            page["estimate_job"] = state.queue.submit(job, kind="estimate")
        except QueueFull:
            estimate.text = ""

    def start_explain() -> None:
        ctx, index = page["ctx"], page["target"]
        if ctx is None or index is None:
            show_error("Generate first, then click a token to choose the target.")
            return
        from heta_lite.engine import explain_context

        lm, s, m = page_lm(), settings(), method.value
        target_ctx = ctx.with_target(index)

        def job(control):
            return explain_context(lm, target_ctx, s, m, control=control, cache=state.cache)

        explain_btn.disable()
        page["job_quality"] = s.quality
        submit(job, "explain", show_result)

    def show_result(exp) -> None:
        from heta_lite.report import build_report

        report = build_report(exp)
        page["exp"], page["report"] = exp, report
        state.last_peak = exp.memory
        tgt = report["target"]
        summary.text = (f"Why '{tgt['display']}'? p = {tgt['prob']:.3f} (rank {tgt['rank']}). "
                        f"Darker = more influential; hover a token for its numbers.")
        heat.content = heatmap_html(report)
        check_line.content = check_html(report)
        top_table.rows = [{"rank": t["rank"], "token": t["display"], "score": f"{t['normalised']:.1%}",
                           "pct": f"{t['percentile']:.0f}"}
                          for t in sorted((t for t in report["tokens"] if t["rank"]), key=lambda t: t["rank"])[:10]]
        alt_table.rows = [{"token": a["text"], "p": f"{a['prob']:.3f}"} for a in tgt["alternatives"]]
        strips.content = strips_html(report)
        st = report["settings"]
        settings_label.text = (f"Settings: method {report['method']} · quality {st['quality']} "
                               f"({st['estimator']}, m={st['num_probes']}, mask {st['mask']}, KL "
                               f"{st.get('information')}) · model {report['model']['name']} "
                               f"({report['model']['quantization']}) · took "
                               f"{report['timings_s'].get('attribution_total', 0):.1f} s · peak RSS "
                               f"{report['memory']['peak_rss_bytes'] / 2**20:.0f} MiB"
                               + (" · " + "; ".join(report["notes"]) if report.get("notes") else ""))
        result_card.set_visibility(True)
        explain_btn.enable()
        start_lens(report)

    def start_lens(report) -> None:
        from heta_lite.explore import logit_lens, next_token

        lm, ids, y = page_lm(), page["exp"].context.input_ids, report["target"]["id"]
        heads = {-1: "mean of heads", **{h: f"head {h}" for h in range(lm.dims.num_heads)}}
        head_sel.options = heads
        head_sel.update()
        n_layers = len(lm.arch.blocks(lm.model))
        layer_sel.options = {i: f"layer {i}" + (" (last)" if i == n_layers - 1 else "") for i in range(n_layers)}
        layer_sel.value = n_layers - 1
        layer_sel.update()
        page["lens_target"] = y

        def job(control):
            control.step("logit lens", 0, 2)
            rows = logit_lens(lm, ids, y)
            control.step("next token", 1, 2)
            return {"lens": rows, "next": next_token(lm, ids, 10)}

        try:
            job_ = state.queue.submit(job, kind="explore")
        except QueueFull:
            return
        page["lens_job"] = job_

    def start_attention() -> None:
        exp = page.get("exp")
        if exp is None:
            show_error("Explain a token first.")
            return
        from heta_lite.explore import attention_from_target

        lm, ids = page_lm(), exp.context.input_ids
        layer = int(layer_sel.value or 0)
        head = None if head_sel.value in (-1, None) else int(head_sel.value)

        def job(control):
            try:
                return attention_from_target(lm, ids, layer, head)
            except (IndexError, TypeError) as err:  # SDPA returns no attention weights
                from heta_lite.errors import HetaError as _E

                raise _E("This model's attention implementation does not return attention weights; "
                         "load it with eager attention to use this view.") from err

        try:
            page["attn_job"] = state.queue.submit(job, kind="explore")
        except QueueFull as err:
            show_error(str(err))

    def download_json() -> None:
        from heta_lite.report import dumps

        if page["report"] is not None:
            ui.download.content(dumps(page["report"]).encode("utf-8"), "heta-report.json", "application/json")

    def download_png() -> None:
        from heta_lite.render import render_heatmap

        if page["report"] is not None:
            ui.download.content(render_heatmap(page["report"]), "heta-heatmap.png", "image/png")

    def cancel() -> None:
        if page["job"] is not None:
            state.queue.cancel(page["job"][0].id)

    # -- polling (event loop only reads job state) -----------------------------------------
    def poll() -> None:
        opts = ready_options(state)
        if run_on.options != opts:  # models loaded, unloaded or switched meanwhile
            run_on.options = opts
            if run_on.value not in opts:
                run_on.value = next(iter(opts), None)
            run_on.update()
        if state.ready:
            lm = state.lm
            if page.get("label_set") is not lm:
                model_label.text = f"{lm.name} · {str(lm.dtype).replace('torch.', '')} · quantization " \
                                   f"{lm.quantization} · {lm.device}"
                loading_row.set_visibility(False)
                page["label_set"] = lm
        elif state.load_error:
            model_label.text = "model unavailable"
            loading_row.set_visibility(False)
            show_error(state.load_error)
        if page["job"] is not None:
            job, on_done = page["job"]
            if job.state in FINISHED:
                page["job"] = None
                progress_card.set_visibility(job.state != DONE)
                cancel_btn.disable()
                if job.state == DONE:
                    on_done(job.result)
                else:
                    status.text = "Cancelled." if job.state == CANCELLED else f"Failed: {job.error}"
                    show_error(job.error if job.state == FAILED else None)
                    explain_btn.enable()
            else:
                view = state.queue.status(job.id) or {}
                pos = view.get("queue_position", 0)
                if view.get("cancel_requested"):
                    status.text = "Cancelling (stops at the next safe point)…"
                elif pos:
                    wait = view.get("wait_s")
                    status.text = (f"Waiting in the queue: position {pos}"
                                   + (f" · starts in about {wait:.0f} s" if wait else "")
                                   + " (other users' or panels' jobs run first)")
                    progress.value = 0
                else:
                    status.text = f"{JOB_WORDS.get(job.kind, job.kind)}: " + stage_text(job) + eta_text(job)
                    progress.value = job.fraction
        for key, render in (("lens_job", render_lens), ("attn_job", render_attention),
                            ("estimate_job", render_estimate)):
            j = page.get(key)
            if j is not None and j.state in FINISHED:
                page[key] = None
                if j.state == DONE:
                    render(j.result)
                elif j.state == FAILED and key != "estimate_job":
                    show_error(j.error)

    def stage_text(job) -> str:
        if not job.stage:
            return "starting"
        return f"{job.stage} {job.done}/{job.total}" if job.total > 1 else job.stage

    def eta_text(job) -> str:
        """ETA: the calibrated estimate for this preset minus the time spent, or else the current
        stage's rate; both are rough."""
        est = page.get("estimates") or {}
        total = est.get(page.get("job_quality")) if job.kind == "explain" else None
        left = None
        if total is not None:
            left = max(total - job.elapsed_s, job.eta_s() or 0.0)
        elif job.eta_s() is not None:
            left = job.eta_s()
        return f" · about {left:.0f} s left (estimate)" if left is not None and left >= 0.5 else ""

    def render_estimate(est) -> None:
        page["estimates"] = est
        n = (page.get("estimate_key") or (0, 0))[0]
        estimate.text = "Expected time here for {} tokens (rough estimate): ".format(n) + " · ".join(
            (f"{q} <1 s" if est[q] < 1 else f"{q} ~{est[q]:.0f} s") if est[q] < 120 else f"{q} ~{est[q] / 60:.0f} min" for q in QUALITIES)

    def render_lens(res) -> None:
        rows = res["lens"]
        lens_info.text = ("For the target position: what the model would predict next (top), and how each layer's "
                          "guess develops (below).")
        next_chart.options.clear()
        next_chart.options.update(next_token_chart(res["next"], page.get("lens_target")))
        next_chart.update()
        lens_chart.options.clear()
        lens_chart.options.update(logit_lens_chart(rows))
        lens_chart.update()
        lens_table.rows = [{"layer": r["layer"], "p": f"{r['p_target']:.3f}",
                            "top": "   ".join(f"“{t['text']}” {t['prob']:.2f}" for t in r["top"])} for r in rows]

    def render_attention(row) -> None:
        attn_html.content = attention_html(page["exp"].context.context_tokens, row)

    def sample_memory() -> None:
        from profiling.memory import snapshot

        snap = snapshot()
        rss = snap.rss_bytes / 2**20
        gpu = None if snap.gpu_used_bytes is None else snap.gpu_used_bytes / 2**20
        page["samples"] = (page["samples"] + [(time.strftime("%H:%M:%S"), rss, gpu)])[-150:]
        mem_chart.options.clear()
        mem_chart.options.update(memory_chart(page["samples"]))
        mem_chart.update()
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
        peak = state.last_peak or {}
        peak_text = f" Last explanation's peak RSS: {peak['peak_rss_bytes'] / 2**20:.0f} MiB" if peak else ""
        if peak and peak.get("peak_torch_cuda_bytes"):
            peak_text += f", peak GPU (torch) {peak['peak_torch_cuda_bytes'] / 2**20:.0f} MiB"
        peak_text += "." if peak else ""
        mem_label.text = f"Process RSS {rss:.0f} MiB. {gpu_text}{peak_text}"

    ui.timer(0.25, poll)
    ui.timer(2.0, sample_memory)
    if job_id:
        job = state.queue.get(job_id)
        if job is None:
            show_error("That job is no longer known to the server (it restarted or the job expired); explain again.")
        elif job.kind == "explain":
            def reattached(exp) -> None:
                show_tokens(exp.context)
                pick(exp.context.target_pos)
                show_result(exp)

            attach(job, reattached)
