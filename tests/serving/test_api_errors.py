"""One error-to-HTTP mapping: an error raised while the API prepares a request (direct) and the
same error raised inside the queued job get the same status and code (issue #15: the two paths
used to disagree: ResourceLimitError was out_of_memory directly and resource_limit from a job,
and a job's unsupported_model or model_not_loaded fell to 500)."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import gui.serving.routes as api_module
from gui.serving import register_api
from gui.serving.ratelimit import Limits
from gui.state import LOADING, AppState, ModelNotLoaded
from heta_lite.errors import InputError, ResourceLimitError, UnsupportedModelError
from heta_lite.jobs import JobQueue, QueueFull

ERRORS = {
    "resource_limit": (lambda: ResourceLimitError("The job needs 9 GB; 4 GB are free."), (507, "out_of_memory")),
    "unsupported_model": (lambda: UnsupportedModelError("No architecture entry for 'mamba'."),
                          (503, "model_unavailable")),
    "input": (lambda: InputError("The prompt is empty.", field="prompt"), (400, "bad_input")),
    "model_not_loaded": (lambda: ModelNotLoaded("'x' (none) is not loaded."), (409, "model_not_loaded")),
    "queue_full": (lambda: QueueFull("The queue is full.", retry_after_s=7), (503, "queue_full")),
}


@pytest.fixture
def client():
    state = AppState(model_name="m", queue=JobQueue())
    app = FastAPI()
    register_api(app, state, Limits(requests_per_minute=6000, burst=1000, concurrent_jobs=100))
    try:
        with TestClient(app) as c:
            yield c
    finally:
        state.queue.shutdown()


def _post(client, monkeypatch, raise_now: bool, make):
    def prepare(state, body):
        if raise_now:
            raise make()

        def job(control):
            raise make()

        return job

    monkeypatch.setattr(api_module, "_explain_job", prepare)
    return client.post("/api/v1/explain", json={"prompt": "Hello there", "model": "m"})


@pytest.mark.parametrize("name", list(ERRORS))
def test_an_error_maps_to_the_same_answer_directly_and_from_a_job(client, monkeypatch, name):
    make, expected = ERRORS[name]
    direct = _post(client, monkeypatch, True, make)
    queued = _post(client, monkeypatch, False, make)
    assert (direct.status_code, direct.json()["error"]["code"]) == expected
    assert (queued.status_code, queued.json()["error"]["code"]) == expected
    assert direct.json()["error"]["message"] == queued.json()["error"]["message"] == str(make())


def test_the_mapping_keeps_the_registry_states_and_retry_after():
    from gui.serving.errors import error_response

    loading = error_response(ModelNotLoaded("still loading", state=LOADING))
    assert loading.status_code == 503 and loading.headers["retry-after"] == "10"
    full = error_response(QueueFull("full", retry_after_s=7))
    assert full.status_code == 503 and full.headers["retry-after"] == "7"
    assert error_response(RuntimeError("secret prompt text")).status_code == 500
    assert b"secret" not in error_response(RuntimeError("secret prompt text")).body
