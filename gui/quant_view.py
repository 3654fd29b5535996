"""Side-by-side view of one prompt explained in two quantization modes, with their agreement.

The numbers are the same as `heta-lite quant-compare` computes per item (heta_lite.agreement over
the scored tokens), so what a user sees here and what the comparison runs report match.
"""
from __future__ import annotations

import html
import numpy as np

from heta_lite.agreement import agreement

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
