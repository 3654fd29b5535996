"""Issue #18 item 9: server paths and failed-load details are for admins. With models loaded from
folders under a home directory, one of them failed with an exception quoting its path, nothing a
non-admin can read (/api/v1/models, /api/v1/health, a model_failed 503) names the folder's path or
the user; the admin view (/api/v1/admin/models, with the token) still has both. Fake loader: no
weights, milliseconds."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gui.serving import register_api
from gui.state import FAILED, READY, AppState
from heta_lite.jobs import JobQueue

TOKEN = "public-views-token"
GOOD = "/home/alice/secret-models/good"
BROKEN = "/home/alice/secret-models/x"


class FakeLM:
    def __init__(self, name: str, quantization: str):
        self.name, self.source, self.quantization, self.device = name, name, quantization, "cpu"
        self.dtype = "float32"

    def describe(self) -> dict:
        from heta_lite.models.loader import public_name

        return {"name": public_name(self.name), "quantization": self.quantization}


@pytest.fixture
def state(monkeypatch):
    import heta_lite.models
    from heta_lite.models import catalogue

    def fake_load(name, device=None, quantization="none"):
        if name == BROKEN:
            raise OSError(f"Can't load tokenizer: no file {BROKEN}/tokenizer.json (owner alice)")
        return FakeLM(name, quantization)

    monkeypatch.setattr(heta_lite.models, "load_model", fake_load)
    monkeypatch.setitem(catalogue.SHORT_NAMES, "my-local", catalogue.ModelSource(
        "my-local", "local", "/home/alice/secret-models/catalogued", description="a local folder"))
    monkeypatch.setenv("HETA_LITE_ADMIN_TOKEN", TOKEN)
    st = AppState(model_name=GOOD, queue=JobQueue())
    st.start_loading()
    st.load(BROKEN, "none")
    st.wait_loaded(10)
    assert {m["model"]: m["state"] for m in st.models()} == {GOOD: READY, BROKEN: FAILED}
    assert "/home/alice" in st.models()[1]["error"]  # the exception did quote the path
    yield st
    st.queue.shutdown()


@pytest.fixture
def client(state):
    app = FastAPI()
    register_api(app, state)
    with TestClient(app) as c:
        yield c


def test_models_and_health_show_public_names_and_no_load_error(client):
    models = client.get("/api/v1/models")
    assert models.status_code == 200 and "alice" not in models.text
    listed = {m["model"]: m for m in models.json()["models"]}
    assert set(listed) == {"local:good", "local:x"}
    assert listed["local:x"]["state"] == FAILED
    assert listed["local:x"]["error"] == "failed to load; an admin can see why in /api/v1/admin/models"
    assert listed["local:good"]["error"] is None
    assert {"name": "my-local", "source": "local:catalogued", "description": "a local folder"} in \
        models.json()["available"]
    assert models.json()["loaded"]["name"] == "local:good"
    health = client.get("/api/v1/health")
    assert health.status_code == 200 and "alice" not in health.text
    assert health.json()["model"] == "local:good"
    assert {m["model"] for m in health.json()["models"]} == {"local:good", "local:x"}


def test_a_failed_model_answers_503_without_its_load_error(client):
    r = client.post("/api/v1/explain", json={"prompt": "The capital of France is", "model": BROKEN})
    assert r.status_code == 503 and r.json()["error"]["code"] == "model_failed", r.text
    assert "alice" not in r.text and "tokenizer.json" not in r.text
    assert "an admin can see why" in r.json()["error"]["message"]


def test_the_admin_view_keeps_the_details(client):
    assert client.get("/api/v1/admin/models").status_code == 403
    r = client.get("/api/v1/admin/models", headers={"X-Admin-Token": TOKEN})
    assert r.status_code == 200
    listed = {m["model"]: m for m in r.json()["models"]}
    assert set(listed) == {GOOD, BROKEN}
    assert f"{BROKEN}/tokenizer.json" in listed[BROKEN]["error"]


def test_a_failed_primary_health_says_error_without_the_message(state, client):
    state.load(BROKEN, "none", primary=True)
    state.wait_loaded(10)
    health = client.get("/api/v1/health")
    assert health.status_code == 503 and health.json()["status"] == "error"
    assert "alice" not in health.text and health.json()["model"] == "local:good"  # the configured name
    assert state.public_load_error == "The model failed to load; an admin can see why in /api/v1/admin/models."
    state.desktop = True  # a desktop install's own user sees the error itself
    assert "tokenizer.json" in state.public_load_error


def _rows_and_labels(state):
    """The model panel's table rows and the 'Run on' labels, as a page user sees them (the panel
    fills its table as it is built)."""
    from nicegui.testing.user_simulation import user_simulation

    from gui.page import build_page

    async def run():
        async with user_simulation(root=lambda: build_page(state)) as user:
            await user.open("/")
            await user.should_see("Models and quantization", retries=100)
            table = next(iter(user.find(marker="model-table").elements))
            run_on = next(iter(user.find(marker="run-on").elements))
            return table.rows, list(run_on.options.values())

    return run


@pytest.mark.parametrize("desktop", [False, True])
async def test_the_model_panel_shows_details_to_the_desktop_owner_only(state, desktop):
    state.desktop = desktop
    rows, labels = await _rows_and_labels(state)()
    by_model = {r["model"]: r for r in rows}
    if desktop:  # the owner of a desktop install sees what the admin sees (as before)
        assert set(by_model) == {GOOD, BROKEN}
        assert f"{BROKEN}/tokenizer.json" in by_model[BROKEN]["error"]
        assert any(GOOD in label for label in labels)
    else:
        assert set(by_model) == {"local:good", "local:x"} and "alice" not in repr(rows)
        assert by_model["local:x"]["error"] == "failed to load; an admin can see why in /api/v1/admin/models"
        assert labels and not any("alice" in label for label in labels)
        assert any("local:good" in label for label in labels)
