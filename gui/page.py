"""The explain page: prompt -> tokens -> pick a target -> explain (queued, with progress) ->
heatmap, ranked list, component strips, exports; plus exploring and memory panels.

All model work goes through the app's JobQueue; the event loop only polls job state.
"""
from __future__ import annotations

import time
from typing import Any

from nicegui import ui

from heta_lite.errors import HetaError
from heta_lite.jobs import CANCELLED, DONE, FAILED, FINISHED, QueueFull
from heta_lite.settings import QUALITIES, HetaSettings
from heta_lite.targets import TargetSpec

from .state import AppState
from .views import component_chart, heatmap_html, logit_lens_chart, memory_chart

EXAMPLES = [
    "The capital of France is",
    "Alice gave Bob her umbrella because it was raining. Who was getting wet?",
    "The chemical symbol for gold is",
    "def fibonacci(n):\n    if n < 2:\n        return",
]

CSS = """
.heta-heatmap { font-family: 'DejaVu Sans Mono', monospace; line-height: 2.1; font-size: 15px; }
.heta-tok { padding: 2px 3px; margin: 1px; border-radius: 3px; cursor: help; white-space: pre; }
.heta-target { padding: 2px 4px; margin: 1px; border: 2px solid #1f4fd1; color: #1f4fd1; border-radius: 3px; }
.tok-chip { font-family: 'DejaVu Sans Mono', monospace; text-transform: none; }
"""


def build_page(state: AppState, job_id: str | None = None) -> None:
    """Build one client's page. Per-page state lives in `page`; the model and queue are shared.
    `job_id` (the URL's ?job=) re-attaches a reloaded page to its running or finished job."""
    ui.add_css(CSS)
    page: dict[str, Any] = {"ctx": None, "target": None, "job": None, "report": None, "exp": None, "samples": []}

    with ui.header().classes("items-center justify-between bg-slate-800"):
        ui.label("HETA Lite — why did the model predict this token?").classes("text-lg font-bold")
        model_label = ui.label("loading model…").classes("text-sm").props("id=model-label")

    with ui.column().classes("w-full max-w-6xl mx-auto gap-3 p-2"):
        error_box = ui.label("").classes("text-red-700 font-medium").props("id=error-box")
        error_box.set_visibility(False)
        with ui.card().classes("w-full"):
            prompt = ui.textarea("Prompt", placeholder="Type or paste a prompt, or pick an example below") \
                .classes("w-full").props("outlined autogrow id=prompt").mark("prompt")
            with ui.row().classes("gap-1 items-center"):
                ui.label("Examples:").classes("text-sm text-gray-600")
                for ex in EXAMPLES:
                    ui.button(ex.split("\n")[0][:38] + ("…" if len(ex) > 38 else ""),
                              on_click=lambda ex=ex: prompt.set_value(ex)).props("flat dense no-caps size=sm")
            with ui.row().classes("items-center gap-4"):
                quality = ui.select({q: q for q in QUALITIES}, value=state.default_quality, label="Quality") \
                    .classes("w-32").props("id=quality")
                from heta_lite.methods import method_names

                method = ui.select(method_names(), value="heta", label="Method").classes("w-40")
                chat = ui.switch("Chat template", value=True)
                max_new = ui.number("New tokens", value=12, min=1, max=64, step=1).classes("w-28")
                estimate = ui.label("").classes("text-sm text-gray-600")
                gen_btn = ui.button("Generate", on_click=lambda: start_generate()).props("id=generate")

        tokens_card = ui.card().classes("w-full")
        with tokens_card:
            ui.label("Click a token to explain why the model predicted it "
                     "(prompt tokens: teacher-forced; generated tokens: the model's own choice).") \
                .classes("text-sm text-gray-600")
            chips = ui.row().classes("gap-0 items-center")
            with ui.row().classes("items-center gap-3"):
                target_label = ui.label("No target yet").classes("font-medium")
                explain_btn = ui.button("Explain", on_click=lambda: start_explain()).props("id=explain color=primary")
                explain_btn.disable()
        tokens_card.set_visibility(False)

        with ui.card().classes("w-full") as progress_card:
            with ui.row().classes("items-center w-full gap-3"):
                status = ui.label("").props("id=status")
                cancel_btn = ui.button("Cancel", on_click=lambda: cancel()).props("flat color=negative id=cancel")
            progress = ui.linear_progress(value=0, show_value=False).classes("w-full")
        progress_card.set_visibility(False)

        result_card = ui.card().classes("w-full")
        with result_card:
            summary = ui.label("").classes("text-base font-medium").props("id=summary")
            heat = ui.html("", sanitize=False).classes("w-full").mark("heatmap")
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
            ui.label("Components (share of each among scored tokens): M gate, S curvature, I information gain") \
                .classes("font-medium")
            comp_chart = ui.echart({"series": []}).classes("w-full h-64")
            settings_label = ui.label("").classes("text-xs text-gray-600")
            with ui.row():
                ui.button("Download JSON report", on_click=lambda: download_json()).props("outline id=dl-json")
                ui.button("Download PNG heatmap", on_click=lambda: download_png()).props("outline id=dl-png")
        result_card.set_visibility(False)

        with ui.expansion("Explore: logit lens and attention", icon="travel_explore").classes("w-full"):
            lens_info = ui.label("Explain a token first.").classes("text-sm")
            lens_chart = ui.echart({"series": []}).classes("w-full h-56")
            lens_table = ui.table(columns=[{"name": "layer", "label": "layer", "field": "layer"},
                                           {"name": "p", "label": "p(target)", "field": "p"},
                                           {"name": "top", "label": "top-3", "field": "top"}], rows=[],
                                  row_key="layer").props("dense flat")
            with ui.row().classes("items-center"):
                layer_sel = ui.number("Layer", value=0, min=0, step=1).classes("w-24")
                head_sel = ui.select({-1: "mean of heads"}, value=-1, label="Head").classes("w-36")
                ui.button("Show attention", on_click=lambda: start_attention()).props("outline")
            attn_html = ui.html("", sanitize=False)

        with ui.expansion("Compare two prompts", icon="compare").classes("w-full"):
            ui.label("Explain the first generated token of two prompts side by side, e.g. a question before and "
                     "after a correction such as 'No, think again: ...'.").classes("text-sm text-gray-600")
            with ui.row().classes("w-full no-wrap gap-4"):
                cmp_a = ui.textarea("Prompt A").classes("w-1/2").props("outlined autogrow").mark("compare-a")
                cmp_b = ui.textarea("Prompt B").classes("w-1/2").props("outlined autogrow").mark("compare-b")
            ui.button("Compare", on_click=lambda: start_compare()).props("outline").mark("compare-btn")
            cmp_summary = ui.label("").classes("font-medium")
            with ui.row().classes("w-full no-wrap gap-4 items-start"):
                cmp_html_a = ui.html("", sanitize=False).classes("w-1/2")
                cmp_html_b = ui.html("", sanitize=False).classes("w-1/2")

        with ui.expansion("Memory", icon="memory").classes("w-full"):
            mem_label = ui.label("").classes("text-sm").props("id=mem-label")
            mem_chart = ui.echart(memory_chart([])).classes("w-full h-48")

    # -- helpers ---------------------------------------------------------------------------
    def show_error(msg: str | None) -> None:
        error_box.text = msg or ""
        error_box.set_visibility(bool(msg))

    def settings() -> HetaSettings:
        return HetaSettings.preset(quality.value)

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

        lm, s = state.lm, settings()
        spec = TargetSpec(generated=0, max_new_tokens=1)

        def job(control):
            return (explain(lm, a, spec, s, control=control, cache=state.cache),
                    explain(lm, b, spec, s, control=control, cache=state.cache))

        submit(job, "compare", show_compare)

    def show_compare(pair) -> None:
        from heta_lite.report import build_report

        ra, rb = (build_report(e) for e in pair)
        ta, tb = ra["target"], rb["target"]
        same = ta["id"] == tb["id"]
        top = lambda r: ", ".join(t["display"] for t in r["summary"]["top"][:3])  # noqa: E731
        cmp_summary.text = (f"A predicts '{ta['display']}' (p {ta['prob']:.3f}); B predicts '{tb['display']}' "
                            f"(p {tb['prob']:.3f})" + (f"; difference in p: {tb['prob'] - ta['prob']:+.3f}" if same
                                                       else "; different tokens")
                            + f". Top tokens A: {top(ra)} · B: {top(rb)}")
        cmp_html_a.content = heatmap_html(ra)
        cmp_html_b.content = heatmap_html(rb)

    def start_generate() -> None:
        show_error(None)
        if not state.ready:
            show_error(state.load_error or "The model is still loading; try again in a moment.")
            return
        text = prompt.value or ""
        if not text.strip():
            show_error("The prompt is empty; type some text or click an example.")
            return
        from heta_lite.targets import build_context

        lm = state.lm
        spec = TargetSpec(generated=0, max_new_tokens=int(max_new.value or 12), chat=bool(chat.value) if
                          getattr(lm.tokenizer, "chat_template", None) else False)
        s = settings()

        def job(control):
            control.step("generating", 0, 1)
            return build_context(lm.model, lm.tokenizer, text, spec, max_tokens=s.max_tokens, cache=state.cache,
                                 revision=f"{lm.name}@{lm.revision}")

        submit(job, "generate", show_tokens)

    def show_tokens(ctx) -> None:
        page["ctx"] = ctx
        chips.clear()
        with chips:
            for tok in ctx.tokens:
                gen = tok.origin == "generated"
                b = ui.button(tok.display or "·", on_click=lambda t=tok.index: pick(t)) \
                    .props(f"flat dense no-caps size=sm {'color=deep-purple' if gen else 'color=grey-9'}") \
                    .classes("tok-chip").props(f"data-index={tok.index}")
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
        page["target"] = index
        tok = ctx.tokens[index]
        kind = "generated token" if index >= ctx.prompt_len else "prompt token"
        target_label.text = f"Target: '{tok.display}' ({kind} at position {index}, {index} tokens of context)"
        explain_btn.enable()
        start_estimate(index, sum(ctx.with_target(index).scored))

    def start_estimate(n: int, n_scored: int) -> None:
        """Expected seconds per preset for this length, from a one-time calibration on this machine."""
        from heta_lite.budget import calibrate, estimate_seconds

        lm = state.lm
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

        lm, s, m = state.lm, settings(), method.value
        target_ctx = ctx.with_target(index)

        def job(control):
            return explain_context(lm, target_ctx, s, m, control=control, cache=state.cache)

        explain_btn.disable()
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
        top_table.rows = [{"rank": t["rank"], "token": t["display"], "score": f"{t['normalised']:.1%}",
                           "pct": f"{t['percentile']:.0f}"}
                          for t in sorted((t for t in report["tokens"] if t["rank"]), key=lambda t: t["rank"])[:10]]
        alt_table.rows = [{"token": a["text"], "p": f"{a['prob']:.3f}"} for a in tgt["alternatives"]]
        comp_chart.options.clear()
        comp_chart.options.update(component_chart(report))
        comp_chart.update()
        st = report["settings"]
        settings_label.text = (f"{report['method']} · {st['quality']} ({st['estimator']}, m={st['num_probes']}, "
                               f"mask {st['mask']}, KL {st.get('information')}) · "
                               f"{report['timings_s'].get('attribution_total', 0):.1f} s · peak RSS "
                               f"{report['memory']['peak_rss_bytes'] / 2**20:.0f} MiB"
                               + (" · " + "; ".join(report["notes"]) if report.get("notes") else ""))
        result_card.set_visibility(True)
        explain_btn.enable()
        start_lens(report)

    def start_lens(report) -> None:
        from heta_lite.explore import logit_lens

        lm, ids, y = state.lm, page["exp"].context.input_ids, report["target"]["id"]
        heads = {-1: "mean of heads", **{h: f"head {h}" for h in range(lm.dims.num_heads)}}
        head_sel.options = heads
        head_sel.update()
        layer_sel.max = len(lm.arch.blocks(lm.model)) - 1

        def job(control):
            return logit_lens(lm, ids, y)

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

        lm, ids = state.lm, exp.context.input_ids
        layer = int(layer_sel.value or 0)
        head = None if head_sel.value in (-1, None) else int(head_sel.value)

        def job(control):
            return attention_from_target(lm, ids, layer, head)

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
        if state.ready:
            lm = state.lm
            model_label.text = f"{lm.name} · {str(lm.dtype).replace('torch.', '')} · quantization " \
                               f"{lm.quantization} · {lm.device}"
        elif state.load_error:
            model_label.text = "model unavailable"
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
                pos = state.queue.position(job)
                if pos:
                    status.text = f"Waiting in the queue: position {pos}"
                    progress.value = 0
                else:
                    eta = job.eta_s()
                    status.text = f"{job.kind}: {job.stage or 'starting'} {job.done}/{job.total}" + \
                                  (f" · about {eta:.0f} s left in this stage" if eta else "")
                    progress.value = job.fraction
        for key, render in (("lens_job", render_lens), ("attn_job", render_attention),
                            ("estimate_job", render_estimate)):
            j = page.get(key)
            if j is not None and j.state in FINISHED:
                page[key] = None
                if j.state == DONE:
                    render(j.result)

    def render_estimate(est) -> None:
        n = page.get("estimate_key", (0, 0))[0]
        estimate.text = "expected here for {} tokens: ".format(n) + " · ".join(
            f"{q} ~{est[q]:.0f} s" if est[q] < 120 else f"{q} ~{est[q] / 60:.0f} min" for q in QUALITIES)

    def render_lens(rows) -> None:
        lens_info.text = "Each layer's guess at the target position (residual stream through the final norm and LM head)."
        lens_chart.options.clear()
        lens_chart.options.update(logit_lens_chart(rows))
        lens_chart.update()
        lens_table.rows = [{"layer": r["layer"], "p": f"{r['p_target']:.3f}",
                            "top": ", ".join(f"{t['text']} {t['prob']:.2f}" for t in r["top"])} for r in rows]

    def render_attention(row) -> None:
        exp = page["exp"]
        toks = exp.context.context_tokens
        vmax = max(row) or 1.0
        spans = []
        import html as _h

        for t, a in zip(toks, row):
            shade = int(255 - 200 * a / vmax)
            spans.append(f'<span class="heta-tok" title="attention {a:.3f}" '
                         f'style="background:rgb({shade},{shade},255)">{_h.escape(t.display or "·")}</span>')
        attn_html.content = '<div class="heta-heatmap">' + "".join(spans) + "</div>"

    def sample_memory() -> None:
        from profiling.memory import snapshot

        snap = snapshot()
        rss = snap.rss_bytes / 2**20
        gpu = None if snap.gpu_used_bytes is None else snap.gpu_used_bytes / 2**20
        page["samples"] = (page["samples"] + [(time.strftime("%H:%M:%S"), rss, gpu)])[-150:]
        mem_chart.options.clear()
        mem_chart.options.update(memory_chart(page["samples"]))
        mem_chart.update()
        gpu_text = (f"GPU {snap.gpu}: {snap.gpu_used_bytes / 2**30:.1f}/{snap.gpu_total_bytes / 2**30:.1f} GiB used"
                    if snap.gpu else "No GPU present: showing process memory only.")
        peak = state.last_peak or {}
        peak_text = f" Last job's peak RSS: {peak['peak_rss_bytes'] / 2**20:.0f} MiB." if peak else ""
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
