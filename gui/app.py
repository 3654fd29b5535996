"""Wire the page into a NiceGUI app (used by run.py and the tests)."""
from __future__ import annotations

from nicegui import app, ui

from .page import build_page
from .state import AppState


def register(state: AppState, limits=None) -> None:
    """Register the page and the REST API for `state` (one model, one queue for every client)."""
    from .serving import register_api

    register_api(app, state, limits)

    @ui.page("/")
    def index(job: str | None = None) -> None:
        build_page(state, job_id=job)

    app.on_shutdown(state.queue.shutdown)
