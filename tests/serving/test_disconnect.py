"""A sync POST /api/v1/explain whose client goes away cancels its job (issue #18 item 1).

The attack: one dropped `accurate` request kept the only worker busy until the 600 s time limit,
and the client never got a job id to cancel with. Here the job runs until it is cancelled (or its
bound passes), the client hangs up mid-wait, and the worker must be free for the next job. Driven
at the ASGI level through the real app (middleware included)."""
from __future__ import annotations

import asyncio
import threading

import pytest
from fastapi import FastAPI

import gui.serving.routes as routes
from gui.serving import register_api
from gui.serving.ratelimit import Limits
from gui.state import AppState
from heta_lite.jobs import CANCELLED, DONE, JobQueue
from tests.serving.asgi_call import AsgiCall

WAIT = 10.0


@pytest.fixture
def served(monkeypatch):
    state = AppState(model_name="m", queue=JobQueue(concurrency=1, time_limit_s=600))
    app = FastAPI()
    register_api(app, state, Limits(requests_per_minute=6000, burst=1000, concurrent_jobs=100))
    started, controls = threading.Event(), []

    def prepare(state, body):
        def slow(control):  # like an 'accurate' run: steps until told to stop
            controls.append(control)
            started.set()
            for _ in range(int(WAIT / 0.05)):
                control.step("slow", 0, 1)
                control.cancel_event.wait(0.05)
            return {"finished": "nobody cancelled me"}

        return slow

    monkeypatch.setattr(routes, "_explain_job", prepare)
    try:
        yield app, state, started
    finally:
        state.queue.shutdown(wait_s=WAIT)


async def test_a_client_that_hangs_up_cancels_its_sync_job_and_frees_the_worker(served):
    app, state, started = served
    call = AsgiCall(app, "POST", "/api/v1/explain", {"prompt": "Hello there", "model": "m"}).start()
    assert await asyncio.to_thread(started.wait, WAIT)
    (job,) = [j for j in state.queue._jobs.values()]
    assert job.state == "running" and not call.task.done()
    call.disconnect()
    await call.finished(WAIT)  # the route stops waiting for nobody ...
    assert (await asyncio.to_thread(state.queue.wait, job.id, WAIT)).state == CANCELLED  # ... and its job ends
    assert call.status == 499 and call.json()["error"]["code"] == "client_closed_request"
    nxt = state.queue.submit(lambda control: "next")  # the one worker runs the next job
    assert (await asyncio.to_thread(state.queue.wait, nxt.id, WAIT)).state == DONE


async def test_a_client_that_waits_still_gets_its_answer(served, monkeypatch):
    app, state, _ = served
    monkeypatch.setattr(routes, "_explain_job", lambda state, body: (lambda control: {"report": "ok"}))
    call = AsgiCall(app, "POST", "/api/v1/explain", {"prompt": "Hello there", "model": "m"}).start()
    await call.finished(WAIT)
    assert call.status == 200 and call.json() == {"report": "ok"}
