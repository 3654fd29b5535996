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


def tooltip(tok: dict) -> str:
    if tok["special"]:
        return f"#{tok['index']} {tok['display']} — special/template token, not scored"
    comps = " · ".join(f"{k} {v['raw']:.3g} ({v['normalised']:.1%})" for k, v in tok["components"].items())
    return (f"#{tok['index']} {tok['display']} — score {tok['score']:.3g}, normalised {tok['normalised']:.1%}, "
            f"percentile {tok['percentile']:.0f}, rank {tok['rank']}" + (f" | {comps}" if comps else ""))


def heatmap_html(report: dict) -> str:
    """Tokens as coloured spans; hover (title) shows the numbers; newlines break the line."""
    scored = [t["normalised"] for t in report["tokens"] if not t["special"]]
    vmax = max(scored) if scored else 1.0
    parts = []
    for t in report["tokens"]:
        if t["special"]:
            style = "background:#eee;color:#999"
        else:
            bg, fg = colour(t["normalised"], vmax)
            style = f"background:{bg};color:{fg}"
        parts.append(f'<span class="heta-tok" data-index="{t["index"]}" data-percentile="{t["percentile"]}" '
                     f'title="{html.escape(tooltip(t))}" style="{style}">{html.escape(t["display"] or "·")}</span>')
        if "\n" in t["text"]:
            parts.append("<br>")
    tgt = report["target"]
    parts.append(f'<span class="heta-target" title="the target: p = {tgt["prob"]:.3f}, rank {tgt["rank"]}">'
                 f'{html.escape(tgt["display"])}</span>')
    return '<div class="heta-heatmap">' + "".join(parts) + "</div>"


def component_chart(report: dict) -> dict:
    """ECharts options: M, S, I (normalised) per scored token, as grouped bars."""
    toks = [t for t in report["tokens"] if not t["special"]]
    labels = [f"{t['index']}:{t['display']}" for t in toks]
    names = list(toks[0]["components"]) if toks else []
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": names},
        "grid": {"left": 40, "right": 10, "top": 30, "bottom": 60},
        "xAxis": {"type": "category", "data": labels, "axisLabel": {"rotate": 45, "fontSize": 10}},
        "yAxis": {"type": "value", "name": "share"},
        "series": [{"name": c, "type": "bar", "data": [round(t["components"][c]["normalised"], 5) for t in toks]}
                   for c in names],
    }


def memory_chart(samples: list[tuple[str, float, float | None]]) -> dict:
    """ECharts options for memory over time: RSS and (if any) GPU memory in MiB."""
    series = [{"name": "process RSS (MiB)", "type": "line", "showSymbol": False,
               "data": [round(s[1], 1) for s in samples]}]
    if any(s[2] is not None for s in samples):
        series.append({"name": "GPU used (MiB)", "type": "line", "showSymbol": False,
                       "data": [None if s[2] is None else round(s[2], 1) for s in samples]})
    return {"tooltip": {"trigger": "axis"}, "legend": {"data": [s["name"] for s in series]},
            "grid": {"left": 50, "right": 10, "top": 30, "bottom": 30},
            "xAxis": {"type": "category", "data": [s[0] for s in samples]},
            "yAxis": {"type": "value"}, "series": series}


def logit_lens_chart(layers: list[dict]) -> dict:
    return {"tooltip": {"trigger": "axis"},
            "grid": {"left": 50, "right": 10, "top": 30, "bottom": 30},
            "xAxis": {"type": "category", "data": [str(r["layer"]) for r in layers], "name": "layer"},
            "yAxis": {"type": "value", "name": "p(target)", "max": 1},
            "series": [{"name": "p(target)", "type": "line", "data": [round(r["p_target"], 5) for r in layers]}]}
