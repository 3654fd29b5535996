"""Issue #18 item 10: a job's prompt stays out of the logs for as long as the job runs, not only
while its request does. An async API job outlives its request (the API guard forgets the prompt
with the 202), and the page's jobs never had a request: a log line of the job quoting the prompt
must come out redacted, in the JSON log and in the plain (`--plain-logs`) one alike. Once the job
has ended its prompt is no longer a secret (the registry does not grow)."""
from __future__ import annotations

import io
import logging
import threading

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nicegui.testing.user_simulation import user_simulation

from gui.page.runner import JobRunner
from gui.page.state import PageState
from gui.serving import register_api, routes
from gui.serving.telemetry import JOB_TEXT, REQUEST_TEXT, JsonFormatter, NoTextFilter, PlainFormatter
from gui.state import AppState
from heta_lite.jobs import CANCELLED, DONE, JobQueue

WAIT = 30
PROMPT = "my private prompt about Zorblat"
JOB_LOG = "heta_lite.engine"  # a job's own logger


@pytest.fixture
def logs():
    """The root logger writes through the privacy filter, as JSON lines and as plain lines (what
    setup_logging installs); put back as it was afterwards. Returns () -> all output."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    bufs = []
    for fmt in (JsonFormatter(), PlainFormatter()):
        buf = io.StringIO()
        h = logging.StreamHandler(buf)
        h.addFilter(NoTextFilter())
        h.setFormatter(fmt)
        root.addHandler(h)
        bufs.append(buf)
    root.setLevel(logging.INFO)
    yield lambda: "".join(b.getvalue() for b in bufs)
    root.handlers, root.level = saved


def _logging_job(text: str, gate: threading.Event):
    """A job that, once `gate` opens, logs an error quoting its prompt (and the exception's)."""

    def job(control):
        assert gate.wait(WAIT)
        try:
            raise ValueError(f"cannot tokenize {text!r}")
        except ValueError:
            logging.getLogger(JOB_LOG).exception("scoring failed for %r", text)
        return {"ok": True}

    return job


@pytest.fixture
def served(monkeypatch):
    state = AppState(model_name="m", queue=JobQueue(concurrency=1))
    gate = threading.Event()
    monkeypatch.setattr(routes, "_explain_job", lambda state, body: _logging_job(body.prompt, gate))
    app = FastAPI()
    register_api(app, state)
    try:
        yield app, state, gate
    finally:
        gate.set()
        state.queue.shutdown(wait_s=WAIT)


def test_an_async_api_job_logging_its_prompt_is_redacted(served, logs):
    app, state, gate = served
    with TestClient(app) as c:
        r = c.post("/api/v1/explain", json={"prompt": PROMPT, "model": "m", "async": True})
        assert r.status_code == 202, r.text
    gate.set()  # the request is over (the guard forgot its prompt); now the job logs
    job = state.queue.wait(r.json()["job_id"], timeout=WAIT)
    assert job.state == DONE
    out = logs()
    assert out.count("[redacted: message contained request text]") == 2, out  # JSON and plain: the line was logged
    assert "Zorblat" not in out
    assert PROMPT not in REQUEST_TEXT  # forgotten once the job ended


def test_every_turn_of_a_conversation_job_is_redacted(monkeypatch, logs):
    """A conversation's turns are the job's texts: a log line quoting any of them is redacted."""
    state = AppState(model_name="m", queue=JobQueue(concurrency=1))
    gate = threading.Event()
    monkeypatch.setattr(routes, "_explain_job", lambda state, body: _logging_job(" | ".join(body.texts), gate))
    app = FastAPI()
    register_api(app, state)
    turns = [{"role": "user", "content": "question about Zorblat"}, {"role": "assistant", "content": "Quux"},
             {"role": "user", "content": "no, Wibblewump"}]
    try:
        with TestClient(app) as c:
            r = c.post("/api/v1/explain", json={"conversation": turns, "model": "m", "async": True})
            assert r.status_code == 202, r.text
        gate.set()
        assert state.queue.wait(r.json()["job_id"], timeout=WAIT).state == DONE
    finally:
        gate.set()
        state.queue.shutdown(wait_s=WAIT)
    out = logs()
    assert out.count("[redacted: message contained request text]") == 2, out
    assert not any(word in out for word in ("Zorblat", "Quux", "Wibblewump"))


def test_a_queued_job_cancelled_by_its_owner_forgets_its_prompt(served):
    app, state, gate = served
    with TestClient(app) as c:
        first = c.post("/api/v1/explain", json={"prompt": "the running one", "model": "m", "async": True}).json()
        queued = c.post("/api/v1/explain", json={"prompt": PROMPT, "model": "m", "async": True}).json()
        assert PROMPT in REQUEST_TEXT  # registered while it waits, with no request running
        r = c.delete(f"/api/v1/jobs/{queued['job_id']}", headers={"X-Job-Token": queued["job_token"]})
        assert r.status_code == 200 and r.json()["state"] == CANCELLED
        assert PROMPT not in REQUEST_TEXT  # it never runs: forgotten at the cancel
    gate.set()
    assert state.queue.wait(first["job_id"], timeout=WAIT).state == DONE


async def test_a_page_job_logging_its_prompt_is_redacted(logs):
    state = AppState(model_name="never-loaded", queue=JobQueue(concurrency=1))
    runners, done = [], []

    def root():
        runner = JobRunner(state, PageState(), show_error=lambda msg: None)
        runner.build_progress()
        runners.append(runner)

    gate = threading.Event()
    text = PROMPT + " (page)"  # passed as the prompt panel passes its prompt
    try:
        async with user_simulation(root=root) as user:
            await user.open("/")
            runners[-1].submit(_logging_job(text, gate), "generate", done.append, texts=(text,))
            job = runners[-1].main[0]
            assert text in REQUEST_TEXT and len(JOB_TEXT) >= 1
            gate.set()
            assert state.queue.wait(job.id, timeout=WAIT).state == DONE
    finally:
        gate.set()
        state.queue.shutdown(wait_s=WAIT)
    out = logs()
    assert out.count("[redacted: message contained request text]") == 2, out
    assert "Zorblat" not in out
    assert text not in REQUEST_TEXT


def test_every_page_job_also_hides_the_pages_current_prompt():
    """The panels pass their own texts (generate: the prompt; compare: both); every page job also
    keeps the prompt of the page's current tokens out of the logs (explanations and side views
    work on it)."""
    from types import SimpleNamespace

    from gui.page.runner import job_texts

    assert job_texts(PageState(ctx=SimpleNamespace(prompt="the page's tokens' prompt"))) == ("the page's tokens' prompt",)
    assert job_texts(PageState()) == () and job_texts(None) == ()
