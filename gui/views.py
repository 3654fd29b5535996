"""Pure functions that turn reports into what the page shows: heatmap HTML, tooltips, chart
options. Kept free of NiceGUI so they are easy to test."""
from __future__ import annotations

import html

from matplotlib import colormaps

_CMAP = colormaps["Reds"]


def colour(value: float, vmax: float) -> tuple[str, str]:
    """(background, text colour) for a normalised score."""
    x = 0.0 if vmax <= 0 else min(1.0, value / vmax)
    r, g, b, _ = _CMAP(x)
    bg = f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})"
    return bg, ("white" if x > 0.6 else "black")


FRAME_TIP = ("frame token: the model sees it before your text, so that position 0 (where models park surplus "
             "attention) is not your first word; never scored")


def tooltip(tok: dict, frame_why: str = "") -> str:
    """Hover text of one heatmap token (lines separated by newlines)."""
    if tok.get("origin") == "frame":
        return f"position {tok['index']}: {tok['display']}\n{FRAME_TIP}" + (f"\n({frame_why})" if frame_why else "")
    if tok["special"]:
        return f"position {tok['index']}: {tok['display']}\nspecial/template token, not scored"
    comps = " · ".join(f"{k} {v['raw']:.3g} ({v['normalised']:.1%})" for k, v in tok["components"].items())
    return (f"position {tok['index']}: {tok['display']}\nscore {tok['score']:.3g} · normalised {tok['normalised']:.1%}\n"
            f"percentile {tok['percentile']:.0f} · rank {tok['rank']}" + (f"\n{comps}" if comps else ""))


def heatmap_html(report: dict) -> str:
    """Tokens as coloured spans; hover (title) shows the numbers; newlines break the line."""
    scored = [t["normalised"] for t in report["tokens"] if not t["special"]]
    vmax = max(scored) if scored else 1.0
    why = (report.get("frame") or {}).get("why", "")
    parts = []
    for t in report["tokens"]:
        if t["special"]:
            style = "background:#eee;color:#999" + (";font-style:italic" if t.get("origin") == "frame" else "")
        else:
            bg, fg = colour(t["normalised"], vmax)
            style = f"background:{bg};color:{fg}"
        parts.append(f'<span class="heta-tok" data-index="{t["index"]}" data-percentile="{t["percentile"]}" '
                     f'data-origin="{html.escape(t.get("origin", ""))}" data-tip="{html.escape(tooltip(t, why))}" '
                     f'style="{style}">{html.escape(t["display"] or "·")}</span>')
        if "\n" in t["text"]:
            parts.append("<br>")
    tgt = report["target"]
    parts.append(f'<span class="heta-target" data-tip="the target: p = {tgt["prob"]:.3f}, rank {tgt["rank"]}">'
                 f'{html.escape(tgt["display"])}</span>')
    return '<div class="heta-heatmap">' + "".join(parts) + "</div>"


def check_html(report: dict) -> str:
    """The faithfulness check in one line: verdict, p(y) before, after deleting the top-k, after
    deleting k random tokens; green when the top tokens matter more than random ones."""
    c = report.get("faithfulness_check")
    if not c:
        return ""
    colour_ = "#1b5e20" if c["passed"] else "#b71c1c"
    mark = "&#10003;" if c["passed"] else "&#10007;"
    tip = (f"deleting the top-{c['k']} tokens vs {c['draws']} random draws of {c['k']} scored tokens "
           f"(frame kept); the top-{c['k']} deletion lowered p more than {c['beats_draws']} of {c['draws']} draws")
    return (f'<div class="heta-check heta-tip" data-passed="{str(c["passed"]).lower()}" data-tip="{html.escape(tip)}" '
            f'style="color:{colour_}">{mark} Faithfulness check: {html.escape(c["verdict"])}. '
            f'p = {c["p_before"]:.3f} → {c["p_after_top"]:.3f} after deleting the top-{c["k"]} tokens, '
            f'{c["p_after_random"]:.3f} after deleting {c["k"]} random ones.</div>')


FLAG_TEXT = {"unlikely_target": "the target is very unlikely (p < 1e-4)",
             "degenerate_repetition": "the input repeats itself unusually often",
             "attention_collapse": "attention is unusually concentrated",
             "attention_diffuse": "attention is unusually spread out",
             "activation_norm": "activations are outside the measured range"}


def risk_html(report: dict) -> str:
    """Failure risk with the accuracy it was measured to have, and the anomaly flags, in one line."""
    parts = []
    r = report.get("failure_risk") or {}
    if r.get("p_wrong") is not None:
        tip = (f"logistic model on entropy, margin, logit-lens depth, punctuation and first-token shares, check; "
               f"fitted on {r.get('fitted_on', '?')}; held-out accuracy {r['test_accuracy']:.0%}, "
               f"AUC {r['test_auc']:.2f}")
        parts.append(f'<span class="heta-tip" data-tip="{html.escape(tip)}">'
                     f'Risk that the answer is wrong: <b>{r["p_wrong"]:.0%}</b> '
                     f'(this estimate was right on {r["test_accuracy"]:.0%} of held-out questions, AUC '
                     f'{r["test_auc"]:.2f})</span>')
    elif r.get("note", "").startswith("not shown"):
        parts.append(f'<span style="color:#555">Failure risk {html.escape(r["note"])}.</span>')
    elif r:
        parts.append('<span>Failure risk: not measured for this model.</span>')
    a = report.get("anomalies") or {}
    if a.get("flags"):
        names = "; ".join(html.escape(FLAG_TEXT.get(f, f)) for f in a["flags"])
        parts.append(f'<span style="color:#b45309" data-anomalies="{html.escape(",".join(a["flags"]))}">'
                     f'&#9888; Unusual run: {names}.</span>')
    elif a:
        parts.append('<span style="color:#555">No anomaly flags.</span>')
    return '<div class="heta-risk">' + " · ".join(parts) + "</div>" if parts else ""


def memory_chart(samples: list[tuple[str, float, float | None]]) -> dict:
    """ECharts options for memory over time: RSS and (if any) GPU memory in MiB."""
    series = [{"name": "process RSS (MiB)", "type": "line", "showSymbol": False,
               "data": [round(s[1], 1) for s in samples]}]
    if any(s[2] is not None for s in samples):
        series.append({"name": "GPU used (MiB)", "type": "line", "showSymbol": False,
                       "data": [None if s[2] is None else round(s[2], 1) for s in samples]})
    return {"tooltip": {"trigger": "axis"}, "legend": {"data": [s["name"] for s in series], "top": 0},
            "animation": False, "grid": {"left": 55, "right": 20, "top": 35, "bottom": 30},
            "xAxis": {"type": "category", "data": [s[0] for s in samples]},
            "yAxis": {"type": "value", "name": "MiB"}, "series": series}


def head_importance_chart(drop: list[list[float]]) -> dict:
    """ECharts heatmap, layer x head: the drop in log p(target) with that head zeroed (red: the head
    helps the prediction; blue: the prediction is surer without it)."""
    cells = [[h, l, round(v, 4)] for l, row in enumerate(drop) for h, v in enumerate(row)]
    span = max((abs(c[2]) for c in cells), default=1.0) or 1.0
    return {"tooltip": {"position": "top"}, "animation": False, "grid": {"left": 60, "right": 20, "top": 10, "bottom": 70},
            "xAxis": {"type": "category", "name": "head", "data": list(range(len(drop[0]) if drop else 0))},
            "yAxis": {"type": "category", "name": "layer", "data": list(range(len(drop)))},
            "visualMap": {"min": -span, "max": span, "calculable": True, "orient": "horizontal", "left": "center",
                          "bottom": 0, "inRange": {"color": ["#2166ac", "#f7f7f7", "#b2182b"]}},
            "series": [{"name": "drop in log p(target)", "type": "heatmap", "data": cells}]}


def logit_lens_chart(layers: list[dict]) -> dict:
    """p(target) and the top-1 token's p per layer; the tooltip names each layer's top-3."""
    return {"tooltip": {"trigger": "axis"}, "animation": False,
            "legend": {"data": ["p(target)", "p(top-1 of the layer)"], "top": 0},
            "grid": {"left": 50, "right": 40, "top": 35, "bottom": 30},
            "xAxis": {"type": "category", "data": [str(r["layer"]) for r in layers], "name": "layer"},
            "yAxis": {"type": "value", "name": "p", "max": 1},
            "series": [{"name": "p(target)", "type": "line", "data": [round(r["p_target"], 5) for r in layers]},
                       {"name": "p(top-1 of the layer)", "type": "line", "lineStyle": {"type": "dashed"},
                        "data": [{"value": round(r["top"][0]["prob"], 5),
                                  "name": " / ".join(t["text"] for t in r["top"])} for r in layers]}]}

COMPONENT_NAMES = {"M": "M · gate (how much attention flows from the token)",
                   "S": "S · curvature (second-order sensitivity)",
                   "I": "I · information (what masking the token costs)"}


def legend_html() -> str:
    """A small colour scale for the heatmap: low -> high share of the attribution."""
    stops = "".join(f'<span style="background:{colour(x, 1.0)[0]};display:inline-block;width:14px;height:12px">'
                    "</span>" for x in (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0))
    return (f'<div class="heta-legend text-xs text-gray-600">less influential {stops} more influential · '
            '<span style="background:#eee;color:#999;padding:0 3px">grey</span> = frame/template/special, '
            'not scored · '
            '<span class="heta-target" style="padding:0 3px">boxed</span> = the target · ␣ space, ↵ newline</div>')


def strips_html(report: dict) -> str:
    """One row per component (M, S, I): the scored tokens coloured by that component's share."""
    toks = [t for t in report["tokens"] if not t["special"]]
    if not toks:
        return ""
    rows = []
    for comp in toks[0]["components"]:
        vals = [t["components"][comp]["normalised"] for t in toks]
        vmax = max(vals) or 1.0
        cells = []
        for t, v in zip(toks, vals):
            bg, fg = colour(v, vmax)
            raw = t["components"][comp]["raw"]
            cells.append(f'<span class="heta-tok" data-tip="{html.escape(t["display"])}: {comp} raw {raw:.3g}, '
                         f'share {v:.1%}" style="background:{bg};color:{fg}">{html.escape(t["display"] or "·")}</span>')
        rows.append(f'<div class="heta-strip"><span class="heta-strip-name" title="{html.escape(COMPONENT_NAMES.get(comp, comp))}">'
                    f'{html.escape(comp)}</span>{"".join(cells)}</div>')
    return '<div class="heta-strips">' + "".join(rows) + "</div>"


def next_token_chart(rows: list[dict], target_id: int | None = None) -> dict:
    """Horizontal bars: the top-k next tokens at the predicting position (the target highlighted)."""
    rows = list(reversed(rows))
    return {"tooltip": {"trigger": "axis"},
            "grid": {"left": 110, "right": 40, "top": 10, "bottom": 25},
            "xAxis": {"type": "value", "name": "p"}, "animation": False,
            "yAxis": {"type": "category", "data": [r["text"] for r in rows]},
            "series": [{"type": "bar", "name": "p", "label": {"show": True, "position": "right", "formatter": "{c}"},
                        "data": [{"value": round(r["prob"], 4),
                                  "itemStyle": {"color": "#1f4fd1" if r["id"] == target_id else "#94a3b8"}}
                                 for r in rows]}]}


def attention_html(tokens: list, row: list[float]) -> str:
    """The context coloured by attention weight from the predicting position (hover: weight)."""
    vmax = max(row) if row and max(row) > 0 else 1.0
    spans = []
    for t, a in zip(tokens, row):
        shade = int(255 - 200 * a / vmax)
        fg = "white" if a / vmax > 0.6 else "black"
        spans.append(f'<span class="heta-tok" data-tip="{html.escape(t.display)}: attention {a:.3f}" '
                     f'style="background:rgb({shade},{shade},255);color:{fg}">{html.escape(t.display or "·")}</span>')
        if "\n" in t.text:
            spans.append("<br>")
    return '<div class="heta-heatmap">' + "".join(spans) + "</div>"
