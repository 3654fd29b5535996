"""The frame and the chosen gate are the defaults of the page's advanced settings and of an API
request that names neither (the core and CLI side: tests/core/test_surface_defaults.py)."""
import pytest
from nicegui.testing.user_simulation import user_simulation

from gui.page import build_page
from gui.serving.schemas import OptionsIn, settings_of
from gui.state import AppState
from heta_lite.jobs import JobQueue
from heta_lite.settings import QUALITIES
from tests.core.test_surface_defaults import EXPECTED
from tests.gui.helpers import one


@pytest.mark.parametrize("quality", QUALITIES)
def test_api_requests_default_to_them(quality):
    s = settings_of(quality, OptionsIn())
    assert {"frame": s.frame, "gate": s.gate} == EXPECTED
    s = settings_of(quality, OptionsIn(gate="full", frame="none"))
    assert (s.frame, s.gate) == ("none", "full")  # and a request can still choose the others


async def test_page_selects_start_on_them():
    state = AppState(model_name="stub", queue=JobQueue(concurrency=1))
    try:
        async with user_simulation(root=lambda: build_page(state)) as user:
            await user.open("/")
            assert {"frame": one(user, "frame").value, "gate": one(user, "gate").value} == EXPECTED
    finally:
        state.queue.shutdown(wait_s=10)
