"""The loaded-model registry (several models / quantization modes, one primary, LRU within
max_models) and the admin API that drives it, on a tiny model folder (real loads, in-process
FastAPI app: no server subprocess needed for these routes)."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gui.serving import register_api
from gui.serving.ratelimit import Limits
from gui.state import FAILED, READY, AppState
from heta_lite.errors import ModelNotLoaded
from heta_lite.errors import HetaError
from heta_lite.jobs import JobQueue

pytest.importorskip("bitsandbytes")
TOKEN = "s3cret-admin-token"


@pytest.fixture
def state(tiny_folder):
    st = AppState(model_name=tiny_folder, queue=JobQueue(), max_models=2, device="cpu")
    st.start_loading()
    st.wait_loaded(120)
    yield st
    st.queue.shutdown(wait_s=300)  # let a running model job stop before the process may exit


def test_primary_second_mode_lookup_and_lru_eviction(state, tiny_folder):
    assert state.ready and state.lm.quantization == "none"
    slot = state.load(tiny_folder, "4bit")  # alias: stored under the canonical name
    state.wait_loaded(120)
    assert slot.quant == "4bit-nf4" and slot.state == READY
    assert state.get().quantization == "none"  # the primary by default
    assert state.get(tiny_folder, "4bit-nf4").quantization == "4bit-nf4"
    assert {(m["quant"], m["primary"]) for m in state.models()} == {("none", True), ("4bit-nf4", False)}
    state.load(tiny_folder, "8bit")  # a third: the least recently used non-primary goes
    state.wait_loaded(120)
    assert [m["quant"] for m in state.models()] == ["none", "8bit"]
    with pytest.raises(ModelNotLoaded, match="is not loaded .*an admin can load it"):
        state.get(tiny_folder, "4bit-nf4")


def test_switch_reload_unload_and_failures(state, tiny_folder, tmp_path):
    old = state.lm
    state.load(tiny_folder, "4bit-fp4", primary=True)
    try:  # requests meanwhile get a clear "still loading" (503), never the old primary silently
        assert state.get().quantization == "4bit-fp4"
    except ModelNotLoaded as err:
        assert "still loading" in str(err)
    state.wait_loaded(120)
    assert state.lm.quantization == "4bit-fp4" and state.get().quantization == "4bit-fp4"
    with pytest.raises(HetaError, match="primary model cannot be unloaded"):
        state.unload(tiny_folder, "4bit-fp4")
    state.unload(tiny_folder, "none")
    assert [m["quant"] for m in state.models()] == ["4bit-fp4"]
    with pytest.raises(ModelNotLoaded):
        state.unload(tiny_folder, "none")
    state.reload()
    state.wait_loaded(120)
    assert state.lm is not None and state.lm is not old and state.lm.quantization == "4bit-fp4"
    bad = state.load(str(tmp_path / "nowhere"), "none")
    state.wait_loaded(60)
    assert bad.state == FAILED and bad.error
    with pytest.raises(HetaError, match="Unknown quantization mode"):
        state.load(tiny_folder, "3bit")


@pytest.fixture
def client(state):
    app = FastAPI()
    register_api(app, state, Limits(requests_per_minute=600, concurrent_jobs=8))
    with TestClient(app) as c:
        yield c


def test_admin_routes_are_disabled_without_a_token(client, monkeypatch):
    monkeypatch.delenv("HETA_LITE_ADMIN_TOKEN", raising=False)
    for method, url, body in (("GET", "/api/v1/admin/models", None), ("POST", "/api/v1/admin/models", {"model": "x"}),
                              ("POST", "/api/v1/admin/models/reload", None),
                              ("DELETE", "/api/v1/admin/models", {"model": "x"})):
        r = client.request(method, url, json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled", url
    monkeypatch.setenv("HETA_LITE_ADMIN_TOKEN", TOKEN)
    r = client.get("/api/v1/admin/models", headers={"x-admin-token": "wrong"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_admin_load_then_users_pick_the_mode(client, state, tiny_folder, monkeypatch):
    monkeypatch.setenv("HETA_LITE_ADMIN_TOKEN", TOKEN)
    admin = {"x-admin-token": TOKEN}
    body = {"prompt": "The capital of France is", "quality": "fast", "target": {"position": 3, "chat": False},
            "quant": "4bit"}
    r = client.post("/api/v1/explain", json=body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "model_not_loaded"
    assert "an admin can load it" in r.json()["error"]["message"]
    r = client.post("/api/v1/admin/models", json={"model": tiny_folder, "quant": "4bit", "primary": False},
                    headers=admin)
    assert r.status_code == 202 and r.json()["model"]["quant"] == "4bit-nf4"
    state.wait_loaded(120)
    listed = client.get("/api/v1/admin/models", headers=admin).json()
    assert {(m["quant"], m["state"]) for m in listed["models"]} == {("none", "ready"), ("4bit-nf4", "ready")}
    r = client.post("/api/v1/explain", json=body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["model"]["quant"]["mode"] == "4bit-nf4" and report["derivatives"]["path"] == "quantized-layers"
    r = client.post("/api/v1/explain", json={**body, "quant": None})
    assert r.status_code == 200 and r.json()["model"]["quantization"] == "none"  # the primary
    health = client.get("/api/v1/health").json()
    assert health["quant"] == "none" and len(health["models"]) == 2
    assert len(client.get("/api/v1/models").json()["models"]) == 2
    r = client.post("/api/v1/explain", json={**body, "quant": "3bit"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "quant"


def test_admin_unload_and_reload_errors(client, tiny_folder, monkeypatch):
    monkeypatch.setenv("HETA_LITE_ADMIN_TOKEN", TOKEN)
    admin = {"x-admin-token": TOKEN}
    r = client.request("DELETE", "/api/v1/admin/models", json={"model": tiny_folder, "quant": "none"}, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "primary_model"
    r = client.request("DELETE", "/api/v1/admin/models", json={"model": tiny_folder, "quant": "8bit"}, headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_loaded"
    r = client.post("/api/v1/admin/models", json={"model": tiny_folder, "quant": "9bit"}, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["field"] == "quant"
    r = client.post("/api/v1/admin/models", json={"model": tiny_folder, "surprise": 1}, headers=admin)
    assert r.status_code == 422
    r = client.post("/api/v1/admin/models/reload", headers=admin)
    assert r.status_code == 202 and r.json()["model"]["state"] in ("loading", "ready")
