"""Wire the page into a NiceGUI app (used by run.py and the tests)."""
from __future__ import annotations

from nicegui import app, ui

from .page import build_page
from .state import AppState


def register(state: AppState, limits=None, allowed_hosts=None) -> None:
    """Register the page and the REST API for `state` (one model, one queue for every client).
    `allowed_hosts` (desktop mode, run.allowed_hosts): any other Host header is refused; the
    Origin check of the page's websocket applies in every mode."""
    from .serving import register_api
    from .serving.hosts import install_host_guard

    register_api(app, state, limits)
    install_host_guard(app, allowed_hosts)

    @ui.page("/")
    def index(job: str | None = None) -> None:
        build_page(state, job_id=job)

    # a lambda: NiceGUI passes the App to a handler that takes one parameter (shutdown's wait_s)
    app.on_shutdown(lambda: state.queue.shutdown())
