"""The loaded-model registry's bookkeeping with a fake loader (no weights, milliseconds): loads run
off the caller's thread and never block lookups of loaded models, eviction drops the least
recently used non-primary model and frees memory outside the registry lock, failures keep their
message, and the desktop flag follows run.py's --host. Real loads: tests/serving/test_model_registry.py."""
from __future__ import annotations

import threading
import time

import pytest

import run
from gui.state import FAILED, LOADING, READY, AppState
from heta_lite.errors import ModelNotLoaded
from heta_lite.errors import ModelUnavailableError
from heta_lite.jobs import JobQueue


class FakeLM:
    def __init__(self, name: str, quantization: str):
        self.name, self.quantization = name, quantization

    def describe(self) -> dict:
        return {"name": self.name, "quantization": self.quantization}


@pytest.fixture
def loader(monkeypatch):
    """Replaces heta_lite.models.load_model; `gates[name]` (an Event) holds that load until set,
    `fail[name]` makes it raise."""
    import heta_lite.models

    calls, gates, fail = [], {}, {}

    def fake_load(name, device=None, quantization="none"):
        calls.append((name, quantization))
        if name in gates:
            assert gates[name].wait(10), "test gate never opened"
        if name in fail:
            raise fail[name]
        return FakeLM(name, quantization)

    monkeypatch.setattr(heta_lite.models, "load_model", fake_load)
    return calls, gates, fail


@pytest.fixture
def state():
    st = AppState(model_name="primary-model", queue=JobQueue(), max_models=2)
    yield st
    st.queue.shutdown()


def test_a_load_in_flight_does_not_block_lookups_of_loaded_models(state, loader):
    _, gates, _ = loader
    state.start_loading()
    state.wait_loaded(10)
    assert state.get().name == "primary-model"
    gates["slow-model"] = threading.Event()
    slot = state.load("slow-model", "8bit")  # returns at once: the load runs on its own thread
    assert slot.state == LOADING
    assert state.get().name == "primary-model"  # the primary keeps answering meanwhile
    with pytest.raises(ModelNotLoaded, match="still loading"):
        state.get("slow-model", "8bit")
    assert {(m["model"], m["state"]) for m in state.models()} == {("primary-model", READY), ("slow-model", LOADING)}
    gates["slow-model"].set()
    state.wait_loaded(10)
    assert state.get("slow-model", "int8").quantization == "8bit"  # aliases find the canonical entry


def test_eviction_is_lru_among_non_primary_and_frees_outside_the_lock(state, loader, monkeypatch):
    frees = []

    def checking_free():  # can another thread (a lookup) take the registry lock right now?
        got = []

        def probe():
            ok = state._lock.acquire(timeout=1)
            if ok:
                state._lock.release()  # an RLock is released by the thread that holds it
            got.append(ok)

        t = threading.Thread(target=probe)
        t.start()
        t.join()
        frees.append(got[0])

    monkeypatch.setattr(AppState, "_free", staticmethod(checking_free))
    state.start_loading()
    state.load("b", "none")
    state.load("c", "4bit")
    state.wait_loaded(10)
    assert [m["model"] for m in state.models()] == ["primary-model", "c"]  # b was the LRU non-primary
    b_victim = state.load("b", "none")  # loads b again; c is now the least recently used
    state.wait_loaded(10)
    assert [m["model"] for m in state.models()] == ["primary-model", "b"]
    assert b_victim.state == READY
    assert frees and all(frees), frees  # every gc/empty_cache ran with the registry lock free
    state.get("b")  # b used last ...
    state.load("d", "none")
    state.wait_loaded(10)
    assert [m["model"] for m in state.models()] == ["primary-model", "d"]  # ... yet never the primary


def test_evicted_and_unloaded_slots_drop_their_weights(state, loader):
    state.start_loading()
    other = state.load("other", "none")
    state.wait_loaded(10)
    assert isinstance(other.lm, FakeLM)
    state.unload("other", "none")
    assert other.lm is None and [m["model"] for m in state.models()] == ["primary-model"]
    third = state.load("third", "none")
    state.wait_loaded(10)
    state.load("fourth", "none")
    state.wait_loaded(10)
    assert third.lm is None  # evicted: the registry holds no reference to its weights any more


def test_a_model_unloaded_while_loading_is_dropped_when_it_arrives(state, loader):
    _, gates, _ = loader
    state.start_loading()
    gates["late"] = threading.Event()
    slot = state.load("late", "none")
    state.unload("late", "none")
    gates["late"].set()
    state.wait_loaded(10)
    assert slot.lm is None and slot.state == LOADING
    assert [m["model"] for m in state.models()] == ["primary-model"]


def test_failed_loads_keep_their_message_and_can_be_retried(state, loader):
    calls, _, fail = loader
    state.start_loading()
    fail["broken"] = ModelUnavailableError("No model 'broken' here: not on the hub and not a folder.")
    slot = state.load("broken", "none")
    state.wait_loaded(10)
    assert slot.state == FAILED and "not on the hub" in slot.error
    listed = next(m for m in state.models() if m["model"] == "broken")
    assert listed["state"] == FAILED and listed["error"] == slot.error
    with pytest.raises(ModelNotLoaded, match="failed to load; an admin can see why") as err:
        state.get("broken")
    assert "not on the hub" not in str(err.value)  # the load error (it may quote paths) is the admins' only
    assert err.value.state == FAILED  # callers decide by state, never by the message's words
    with pytest.raises(ModelNotLoaded, match="an admin can load it") as never:
        state.get("never-loaded")
    assert never.value.state is None
    del fail["broken"]
    retry = state.load("broken", "none")  # a failed entry is loaded again, not returned as is
    state.wait_loaded(10)
    assert retry is not slot and retry.state == READY
    assert calls.count(("broken", "none")) == 2


def test_primary_load_failure_is_the_load_error(loader):
    _, _, fail = loader
    fail["primary-model"] = ModelUnavailableError("Not cached and no network.")
    st = AppState(model_name="primary-model", queue=JobQueue())
    try:
        st.start_loading()
        st.wait_loaded(10)
        assert not st.ready and st.load_error == "Not cached and no network."
    finally:
        st.queue.shutdown()


def test_api_tells_loading_failed_and_not_loaded_apart(loader):
    """Each registry state maps to its own HTTP answer: loading 503 + Retry-After (wait), failed
    503 model_failed without Retry-After (waiting will not help), absent 409 model_not_loaded."""
    import json

    from gui.serving.errors import error_response as error_for

    _, gates, fail = loader
    state = AppState(model_name="primary-model", queue=JobQueue(), max_models=3)  # room for all three
    state.start_loading()
    gates["slow"] = threading.Event()
    fail["broken"] = ModelUnavailableError("Not cached and no network.")
    state.load("slow")
    broken = state.load("broken")
    try:
        deadline = time.monotonic() + 10  # 'broken' fails on its own thread; 'slow' stays loading
        while broken.state != FAILED and time.monotonic() < deadline:
            time.sleep(0.01)
        answers = {}
        for name in ("slow", "broken", "absent"):
            with pytest.raises(ModelNotLoaded) as err:
                state.get(name)
            resp = error_for(err.value)
            answers[name] = (resp.status_code, json.loads(resp.body)["error"]["code"], resp.headers.get("retry-after"))
    finally:
        gates["slow"].set()
        state.wait_loaded(10)
        state.queue.shutdown()
    assert answers["slow"] == (503, "model_loading", "10")
    assert answers["absent"] == (409, "model_not_loaded", None)
    assert answers["broken"][:2] == (503, "model_failed") and answers["broken"][2] is None


def test_desktop_mode_follows_the_bind_address():
    assert run.is_desktop(run.parse_args([]).host)  # the default binds loopback
    assert run.is_desktop("localhost") and run.is_desktop("::1")
    assert not run.is_desktop(run.parse_args(["--host", "0.0.0.0"]).host)
    assert not run.is_desktop("192.168.1.20")


def test_explain_route_says_the_primary_failed_rather_than_loading(loader):
    """A primary whose load failed is not 'loading': the API says so, with its reason and no
    Retry-After, and keeps serving health."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from gui.serving import register_api
    from gui.serving.ratelimit import Limits

    _, _, fail = loader
    fail["primary-model"] = ModelUnavailableError("Not cached and no network.")
    st = AppState(model_name="primary-model", queue=JobQueue())
    app = FastAPI()
    register_api(app, st, Limits(requests_per_minute=600, concurrent_jobs=8))
    try:
        st.start_loading()
        st.wait_loaded(10)
        with TestClient(app) as client:
            r = client.post("/api/v1/explain", json={"prompt": "Hello there", "quality": "fast"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "model_failed"
            assert "Not cached and no network." not in r.json()["error"]["message"]  # admins only (issue #18)
            assert "retry-after" not in r.headers
            health = client.get("/api/v1/health")  # answers (503: not ready) and names the failure
            assert health.status_code == 503 and health.json()["status"] == "error"
            assert health.json()["models"][0]["state"] == FAILED
    finally:
        st.queue.shutdown()
