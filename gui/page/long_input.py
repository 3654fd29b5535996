"""Under the result of a long prompt (report field `long_input`, heta_lite/long_input.py): the plain
statement of which tokens were scored and how, and one bar per earlier chunk for its summary effect
log p(target | frame + chunk + window) - log p(target | frame + window)."""
from __future__ import annotations

from html import escape
from typing import Any

from nicegui import ui

EXCERPT = 60  # characters of each chunk shown next to its bar


def long_input_html(report: dict[str, Any]) -> str:
    """The statement and a bar list of the chunks' effects ('' for a prompt that fitted)."""
    li = report.get("long_input")
    if not li:
        return ""
    text = report.get("text", "")
    chunks = li.get("chunks", [])
    top = max((abs(c["effect_logprob"]) for c in chunks if c["effect_logprob"] is not None), default=0.0) or 1.0
    rows = []
    for c in chunks:
        e = c["effect_logprob"]
        piece = text[c["start_char"]:c["end_char"]].strip().replace("\n", " ")
        piece = piece[:EXCERPT] + ("…" if len(piece) > EXCERPT else "")
        if e is None:
            bar, val = "", "not computed"
        else:
            colour = "#2e7d32" if e >= 0 else "#c62828"
            bar = (f'<div style="width:{100 * abs(e) / top:.1f}%;background:{colour};height:10px;'
                   'border-radius:2px"></div>')
            val = f"{e:+.3f}"
        rows.append(
            f'<tr><td style="white-space:nowrap">chars {c["start_char"]}–{c["end_char"]} · {c["n_tokens"]} tok</td>'
            f'<td style="width:30%;min-width:80px">{bar}</td><td style="text-align:right">{escape(val)}</td>'
            f'<td class="text-gray-600">{escape(piece)}</td></tr>')
    table = ""
    if rows:
        table = ('<div class="font-medium" style="margin-top:4px">Earlier text: each chunk\'s summary effect on '
                 'log p(target) when it is put back before the window (green raises it, red lowers it)</div>'
                 '<table style="width:100%;border-collapse:collapse">' + "".join(rows) + "</table>")
    return f'<div data-long-input="1"><div>{escape(li["statement"])}</div>{table}</div>'


class LongInputView:
    """The statement and the chunk bars; hidden when the report has no `long_input`."""

    def __init__(self) -> None:
        self.html = ui.html("", sanitize=False).classes("w-full text-sm").mark("long-input")
        self.html.set_visibility(False)

    def show(self, report: dict[str, Any]) -> None:
        content = long_input_html(report)
        self.html.content = content
        self.html.set_visibility(bool(content))
