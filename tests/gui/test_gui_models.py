"""The page's model panel, 'Run on' selector and quantization side-by-side view, through
NiceGUI's simulated user, on a tiny model folder (fast real loads in two modes)."""

import pytest
from nicegui.testing.user_simulation import user_simulation

from gui.page import build_page
from gui.state import AppState
from heta_lite.jobs import JobQueue
from tests.gui.helpers import one as _one
from tests.gui.helpers import until

pytest.importorskip("bitsandbytes")
TOKEN = "panel-token"


@pytest.fixture
def state(tiny_folder):
    st = AppState(model_name=tiny_folder, default_quality="fast", queue=JobQueue(), device="cpu")
    st.start_loading()
    st.wait_loaded(120)
    yield st
    st.queue.shutdown(wait_s=300)  # let a running model job stop before the process may exit


async def test_admin_loads_a_second_mode_and_users_can_run_on_it(state, tiny_folder, monkeypatch):
    monkeypatch.setenv("HETA_LITE_ADMIN_TOKEN", TOKEN)
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        await user.should_see("Models and quantization", retries=300)
        await until(lambda: len(_one(user, "model-table").rows) == 1, 240.0)
        assert _one(user, "model-table").rows[0]["quant"] == "none"
        await user.should_see("needs the admin token")  # not a desktop install: the token is required
        user.find(marker="admin-token").type("wrong")
        user.find(marker="admin-load").click()
        await user.should_see("Wrong or missing X-Admin-Token", retries=300)
        assert len(state.models()) == 1
        user.find(marker="admin-token").clear().type(TOKEN)
        _one(user, "admin-quant").value = "4bit-nf4"
        user.find(marker="admin-load").click()
        state.wait_loaded(120)
        await until(lambda: {r["quant"]: r["state"] for r in _one(user, "model-table").rows}.get("4bit-nf4")
                    == "ready", 240.0)
        run_on = _one(user, "run-on")
        await until(lambda: f"{tiny_folder}|4bit-nf4" in run_on.options, 240.0)
        run_on.value = f"{tiny_folder}|4bit-nf4"
        user.find(marker="prompt").type("The capital of France is")
        user.find(marker="generate").click()
        await user.should_see("Target:", retries=2400)
        user.find(marker="explain").click()
        await user.should_see("Why '", retries=2400)
        await user.should_see("(4bit-nf4)")  # the settings line names the mode it ran on


async def test_quantization_side_by_side(state, tiny_folder):
    state.load(tiny_folder, "8bit")
    state.wait_loaded(120)
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        await until(lambda: len(_one(user, "quant-a").options) == 2, 240.0)
        assert _one(user, "quant-a").value == f"{tiny_folder}|none"
        assert _one(user, "quant-b").value == f"{tiny_folder}|8bit"
        user.find(marker="quant-prompt").type("The capital of France is")
        user.find(marker="quant-compare-btn").click()
        await until(lambda: "Spearman" in _one(user, "quant-agreement").content, 300)
        table = _one(user, "quant-agreement").content
        assert all(name in table for name in ("final score", "M gate", "S curvature", "I information"))
        a, b = _one(user, "quant-side-a").content, _one(user, "quant-side-b").content
        assert a.startswith("<div class='font-medium'>none") and "heta-tok" in a
        assert b.startswith("<div class='font-medium'>8bit") and "heta-tok" in b
        assert "gradients through the" in b  # the 8-bit side says which derivative path it took


async def test_desktop_owner_needs_no_token(state, tiny_folder, monkeypatch):
    monkeypatch.delenv("HETA_LITE_ADMIN_TOKEN", raising=False)
    state.desktop = True
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        await user.should_see("You own this desktop install")
        _one(user, "admin-quant").value = "4bit-fp4"
        user.find(marker="admin-load").click()
        state.wait_loaded(120)
        await until(lambda: any(r["quant"] == "4bit-fp4" for r in _one(user, "model-table").rows), 240.0)
        _one(user, "admin-quant").value = "none"
        user.find(marker="admin-unload").click()
        await user.should_see("primary model cannot be unloaded", retries=300)
