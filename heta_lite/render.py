"""PNG heatmap of one explanation: the context as coloured token boxes, the target at the end.

One renderer for CLI and GUI exports. Tokens use their readable `display` form (spaces as ␣,
newlines as ↵ followed by a line break, split bytes as <0xNN>), special/template tokens are
grey, and a colour bar gives the scale of the normalised score.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

FONT = "DejaVu Sans Mono"  # ships with matplotlib, has ␣ and ↵
FONT_PT = 11.0
CHAR_W = 0.6 * FONT_PT  # monospace advance in points
LINE_H = 2.0 * FONT_PT
PAGE_W = 900.0  # points of text per line


def render_heatmap(report: dict, out: str | Path | BinaryIO | None = None, cmap: str = "Reds",
                   max_tokens: int = 2000) -> bytes:
    """Render a report dict (see heta_lite.report) to PNG; write to `out` if given; return the bytes."""
    tokens = report["tokens"][-max_tokens:]
    scored = [t["normalised"] for t in tokens if not t["special"]]
    vmax = max(scored) if scored and max(scored) > 0 else 1.0
    norm = Normalize(vmin=0.0, vmax=vmax)
    colours = colormaps[cmap]

    boxes, x, line = [], 0.0, 0
    items = [(t["display"], t, False) for t in tokens] + [(report["target"]["display"], None, True)]
    for display, tok, is_target in items:
        label = display if display else "\u00b7"
        w = CHAR_W * len(label) + 4
        if x + w > PAGE_W and x > 0:
            x, line = 0.0, line + 1
        boxes.append((x, line, label, tok, is_target))
        x += w + 2
        if tok is not None and "\n" in tok["text"]:
            x, line = 0.0, line + 1
    n_lines = line + 1
    header = 3
    fig_h_pt = (n_lines + header + 1.5) * LINE_H
    fig = plt.figure(figsize=((PAGE_W + 40) / 72, fig_h_pt / 72), dpi=144)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-20, PAGE_W + 20)
    ax.set_ylim(fig_h_pt, 0)
    ax.axis("off")
    tgt = report["target"]
    model = report["model"]
    settings = report["settings"]
    ax.text(0, LINE_H * 0.8, f"Why '{tgt['display']}'?  p = {tgt['prob']:.3f}, rank {tgt['rank']}",
            fontsize=13, fontweight="bold", family="DejaVu Sans", va="center")
    ax.text(0, LINE_H * 1.8, f"{report['method']} · {model['name']} ({model['dtype']}, {model['quantization']}) · "
            f"quality {settings['quality']}, {settings['estimator']} m={settings['num_probes']}, mask {settings['mask']}",
            fontsize=9, color="#444", family="DejaVu Sans", va="center")
    for bx, bl, label, tok, is_target in boxes:
        y = (bl + header) * LINE_H
        if is_target:
            face, edge, color = "white", "#1f4fd1", "#1f4fd1"
        elif tok["special"]:
            face, edge, color = "#e6e6e6", "#e6e6e6", "#888"
        else:
            face = colours(norm(tok["normalised"]))
            edge = face
            color = "white" if norm(tok["normalised"]) > 0.6 else "black"
        ax.text(bx + 2, y, label, family=FONT, fontsize=FONT_PT, color=color, va="center", ha="left",
                bbox=dict(boxstyle="square,pad=0.15", facecolor=face, edgecolor=edge, linewidth=1.2))
    cax = fig.add_axes([0.72, 1 - 1.3 * LINE_H / fig_h_pt, 0.25, 0.35 * LINE_H / fig_h_pt])
    cb = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=colours), cax=cax, orientation="horizontal")
    cb.ax.tick_params(labelsize=7)
    cb.set_label("normalised score (grey: special/template, not scored)", fontsize=7)
    return _png(fig, out)


def render_association(assoc: dict, out: str | Path | BinaryIO | None = None) -> bytes:
    """PNG of the input x output association matrix (rows: generated tokens; columns: context)."""
    import numpy as np

    M = np.array([[np.nan if v is None else v for v in row] for row in assoc["matrix"]], dtype=float)
    cols, rows = assoc["columns"], assoc["rows"]
    fig_w = max(6.0, 0.22 * len(cols) + 2)
    fig_h = max(3.0, 0.3 * len(rows) + 2)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h), dpi=120)
    im = ax.imshow(np.ma.masked_invalid(M), cmap="Reds", aspect="auto", vmin=0)
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7, family=FONT)
    ax.set_yticks(range(len(rows)), rows, fontsize=8, family=FONT)
    ax.set_xlabel("context token (prompt, then earlier generated tokens)")
    ax.set_ylabel("generated token")
    fig.colorbar(im, ax=ax, label="normalised score")
    fig.tight_layout()
    return _png(fig, out)


def _png(fig, out: str | Path | BinaryIO | None) -> bytes:
    """Close `fig` as PNG bytes, written to `out` (path or binary stream) when given."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = buf.getvalue()
    if isinstance(out, (str, Path)):
        Path(out).write_bytes(data)
    elif out is not None:
        out.write(data)
    return data
