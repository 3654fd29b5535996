"""The app's shape (issue #15): no file of gui/ over 300 lines, one module per panel, one timer
per page, and per-page data on the page (two pages never share an explanation's peak)."""
from __future__ import annotations

from pathlib import Path

from nicegui import ui
from nicegui.testing.user_simulation import user_simulation

import gui
from gui.page import PageState, build_page
from gui.state import AppState
from heta_lite.jobs import JobQueue

GUI = Path(gui.__file__).parent
PANELS = ("theme", "state", "runner", "prompt", "tokens", "result", "explore", "compare", "quantization", "models",
          "memory")


def test_no_file_of_the_app_is_over_300_lines():
    sizes = {str(p.relative_to(GUI)): len(p.read_text(encoding="utf-8").splitlines()) for p in GUI.rglob("*.py")}
    assert sizes and {k: v for k, v in sizes.items() if v > 300} == {}


def test_one_module_per_panel_and_the_api_in_its_own_package():
    assert all((GUI / "page" / f"{name}.py").exists() for name in PANELS)
    assert (GUI / "serving" / "api.py").exists() and not (GUI / "api.py").exists()
    for p in (GUI / "page").glob("*.py"):  # the page never reaches into the HTTP side
        assert "serving" not in p.read_text(encoding="utf-8"), p.name


def test_the_app_state_holds_no_per_page_data():
    assert not hasattr(AppState(), "last_peak")
    assert "last_peak" in PageState.__dataclass_fields__


async def test_one_timer_per_page_and_page_state_per_page():
    st = AppState(model_name="never-loaded", queue=JobQueue())
    seen = []

    def root():
        seen.append((build_page(st), ui.context.client))

    timers = []
    try:
        for _ in range(2):
            async with user_simulation(root=root) as user:
                await user.open("/")
                await user.should_see("Process RSS", retries=40)  # the memory panel ran on the one timer
                client = seen[-1][1]
                timers.append(sum(isinstance(e, ui.timer) for e in client.elements.values()))
        assert timers == [1, 1]
        (ps_a, _), (ps_b, _) = seen[0], seen[-1]
        assert ps_a is not ps_b
        ps_a.last_peak = {"peak_rss_bytes": 1}
        assert ps_b.last_peak is None
    finally:
        st.queue.shutdown()
