"""The page's frame: CSS, the header with the model label, the error line and the loading note.
`with frame(state) as f:` builds them and yields the column every panel goes into."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from nicegui import ui

from ..state import AppState

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
.heta-tok[data-tip], .heta-target[data-tip], .heta-tip[data-tip] { position: relative; }
.heta-tok[data-tip]:hover::after, .heta-target[data-tip]:hover::after, .heta-tip[data-tip]:hover::after {
  content: attr(data-tip); position: absolute; left: 0; top: 115%; z-index: 50; width: max-content; max-width: 460px;
  white-space: pre-line; background: #1e293b; color: #fff; padding: 5px 8px; border-radius: 5px;
  font-size: 12px; line-height: 1.45; font-family: 'DejaVu Sans Mono', monospace; pointer-events: none; }
.heta-tok[data-tip]:hover { outline: 2px solid #1e293b; }
"""


class Frame:
    """The header's model label, the page's one error line and the 'loading the model' note."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self._label_set = None  # the model the label describes
        with ui.header(fixed=False).classes("items-center justify-between bg-slate-800"):
            ui.label("HETA Lite — why did the model predict this token?").classes("text-lg font-bold")
            self.model_label = ui.label("loading model…").classes("text-sm").props("id=model-label")
        self.column = ui.column().classes("w-full max-w-6xl mx-auto gap-3 p-2")
        with self.column:
            self.error_box = ui.label("").classes("text-red-700 font-medium").props("id=error-box")
            self.error_box.set_visibility(False)
            with ui.row().classes("items-center gap-2 text-gray-700") as self.loading_row:
                ui.spinner(size="sm")
                ui.label(f"Loading the model ({state.model_name}); the first start can take a minute. "
                         "You can type a prompt meanwhile.")
            self.loading_row.set_visibility(not state.ready)
            ui.label("1. Type a prompt (or click an example) and press Generate.  2. Click any token.  "
                     "3. Press Explain to see which earlier tokens made the model predict it.") \
                .classes("text-sm text-gray-700")

    def show_error(self, msg: str | None) -> None:
        self.error_box.text = msg or ""
        self.error_box.set_visibility(bool(msg))

    def refresh_model(self) -> None:
        """The header follows the primary model (loaded, switched or failed meanwhile)."""
        state = self.state
        if state.ready:
            lm = state.lm
            if self._label_set is not lm:
                self.model_label.text = f"{lm.name} · {str(lm.dtype).replace('torch.', '')} · quantization " \
                                        f"{lm.quantization} · {lm.device}"
                self.loading_row.set_visibility(False)
                self._label_set = lm
        elif state.load_error:
            self.model_label.text = "model unavailable"
            self.loading_row.set_visibility(False)
            self.show_error(state.public_load_error)


@contextmanager
def frame(state: AppState) -> Iterator[Frame]:
    ui.add_css(CSS)
    f = Frame(state)
    with f.column:
        yield f
