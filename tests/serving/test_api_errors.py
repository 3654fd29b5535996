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
from gui.state import LOADING, AppState
from heta_lite.errors import InputError, ModelNotLoaded, QueueFull, ResourceLimitError, UnsupportedModelError
from heta_lite.jobs import JobQueue

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


def _all_error_classes() -> list[type]:
    import gui.admin  # noqa: F401  (AdminDenied: the app's own HetaError)
    import heta_lite.report  # noqa: F401  (ReportError)
    from heta_lite.errors import HetaError

    seen, todo = [], [HetaError]
    while todo:
        cls = todo.pop(0)
        if cls.__module__.split(".")[0] in ("heta_lite", "gui"):
            seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def _instances(cls) -> list:
    """One instance per distinct answer the class can give (ModelNotLoaded per registry state)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    kwargs = {"retry_after_s": 7} if "retry_after_s" in params else {}
    made = [cls(f"{cls.__name__}: what to change.", **kwargs)]
    if cls is ModelNotLoaded:
        made += [cls("still loading", state=LOADING), cls("its load failed", state="failed")]
    return made


def _answer(resp) -> tuple:
    import json

    body = (resp.json() if hasattr(resp, "json") else json.loads(resp.body))["error"]
    return resp.status_code, body["code"], body["message"], resp.headers.get("retry-after")


def test_every_error_class_answers_the_same_directly_and_from_a_failed_job(client, monkeypatch):
    """All HetaError subclasses (the core's and the app's): the answer comes from the class, and
    the job that fails with an instance answers exactly like the direct call, Retry-After included."""
    from gui.serving.errors import error_response
    from heta_lite.errors import http_facts

    classes = _all_error_classes()
    assert {c.__name__ for c in classes} >= {
        "HetaError", "InputError", "ModelUnavailableError", "UnsupportedModelError", "ModelNotLoaded",
        "ResourceLimitError", "QueueFull", "JobCancelled", "JobTimeout", "AdminDenied", "ClientLimited", "ReportError"}
    q = JobQueue()
    try:
        for cls in classes:
            for err in _instances(cls):
                status, code, retry = http_facts(err)
                assert 400 <= status < 600 and status != 500 and code, cls
                direct = error_response(err)

                def fail(control, err=err):
                    raise err

                job = q.submit(fail)
                q.wait(job.id, 10)
                from_job = error_response(job)
                assert _answer(direct) == _answer(from_job) == (status, code, str(err), retry and str(retry)), cls
                # and through the API: raised while the request is prepared, or inside its job
                api_direct = _post(client, monkeypatch, True, lambda err=err: err)
                api_job = _post(client, monkeypatch, False, lambda err=err: err)
                assert _answer(api_direct) == _answer(api_job) == _answer(direct), cls
    finally:
        q.shutdown()


def test_the_intended_mapping():
    from heta_lite.errors import JobCancelled, JobTimeout, ModelUnavailableError, http_facts

    assert http_facts(ResourceLimitError) == (507, "out_of_memory", None)
    assert http_facts(UnsupportedModelError)[:2] == http_facts(ModelUnavailableError)[:2] == (503, "model_unavailable")
    assert http_facts(InputError)[:2] == (400, "bad_input") and http_facts(JobTimeout)[:2] == (504, "timeout")
    assert http_facts(JobCancelled)[:2] == (409, "cancelled")
    assert http_facts(ModelNotLoaded("x", state="failed"))[:2] == (503, "model_failed")
    from gui.admin import AdminDenied

    assert http_facts(AdminDenied("x", "admin_disabled"))[:2] == (403, "admin_disabled")
