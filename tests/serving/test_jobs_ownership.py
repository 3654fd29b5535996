"""Jobs belong to their submitter (issue #18 items 2 and 8).

The attacks: another client read a finished report (prompt text included), cancelled someone
else's job and followed its event stream knowing only the job id; and event streams were
uncapped. Now the async answer hands the submitter a per-job token, the job routes need it in
X-Job-Token (without it the job is as unknown as one that never existed), and streams are capped
in all and per client."""
from __future__ import annotations

import asyncio
import threading

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import gui.serving.routes as routes
from gui.serving import register_api
from gui.serving.ratelimit import Limits
from gui.state import AppState
from heta_lite.jobs import DONE, JobQueue
from tests.serving.asgi_call import AsgiCall

WAIT = 10.0
SECRET = "the victim's private prompt"
LIMITS = Limits(requests_per_minute=6000, burst=1000, concurrent_jobs=100)


@pytest.fixture
def served(monkeypatch):
    state = AppState(model_name="m", queue=JobQueue(concurrency=1))
    gate = threading.Event()

    def prepare(state, body):
        def job(control):
            assert gate.wait(WAIT)
            return {"prompt": body.prompt}

        return job

    monkeypatch.setattr(routes, "_explain_job", prepare)
    monkeypatch.setattr(routes, "MAX_STREAMS", 3)
    monkeypatch.setattr(routes, "MAX_STREAMS_PER_CLIENT", 2)
    app = FastAPI()
    register_api(app, state, LIMITS)
    try:
        yield app, state, gate
    finally:
        gate.set()
        state.queue.shutdown(wait_s=WAIT)


def _submit(c: TestClient) -> dict:
    r = c.post("/api/v1/explain", json={"prompt": SECRET, "model": "m", "async": True})
    assert r.status_code == 202, r.text
    return r.json()


def test_another_client_cannot_read_cancel_or_follow_a_job_by_its_id(served):
    app, state, gate = served
    with TestClient(app, client=("203.0.113.1", 4000)) as victim, \
            TestClient(app, client=("203.0.113.66", 4000)) as attacker:
        sub = _submit(victim)
        job_id, token = sub["job_id"], sub["job_token"]
        assert len(token) >= 32
        gate.set()
        assert state.queue.wait(job_id, WAIT).state == DONE
        for headers in ({}, {"x-job-token": "guess"}, {"x-job-token": token[:-1]}, {"x-job-token": "é€".encode()}):
            for method, path in (("GET", f"/api/v1/jobs/{job_id}"), ("GET", f"/api/v1/jobs/{job_id}/events"),
                                 ("DELETE", f"/api/v1/jobs/{job_id}")):
                r = attacker.request(method, path, headers=headers)
                assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_job", (method, path, headers)
                assert SECRET not in r.text and token not in r.text
        # the same answer as for an id that never existed: the id can't be probed for
        assert attacker.get("/api/v1/jobs/never-was").json()["error"]["code"] == "unknown_job"
        mine = victim.get(f"/api/v1/jobs/{job_id}", headers={"x-job-token": token})
        assert mine.status_code == 200 and mine.json()["report"] == {"prompt": SECRET}
        assert token not in mine.text  # the token is handed out once, in the 202 answer
        events = victim.get(f"/api/v1/jobs/{job_id}/events", headers={"x-job-token": token})
        assert events.status_code == 200 and "event: end" in events.text and SECRET not in events.text


def test_the_owner_cancels_with_the_token_and_a_stranger_cannot(served):
    app, state, gate = served
    with TestClient(app, client=("203.0.113.1", 4000)) as c:
        sub = _submit(c)
        assert c.delete(f"/api/v1/jobs/{sub['job_id']}").status_code == 404
        assert not state.queue.get(sub["job_id"]).control.cancel_event.is_set()  # the stranger changed nothing
        d = c.delete(f"/api/v1/jobs/{sub['job_id']}", headers={"x-job-token": sub["job_token"]})
        assert d.status_code == 200 and d.json()["cancel_requested"]


async def test_event_streams_are_capped_in_all_and_per_client(served):
    app, state, gate = served
    with TestClient(app, client=("203.0.113.1", 4000)) as c:
        sub = _submit(c)  # runs until the gate opens: its streams stay open
    hdr = {"x-job-token": sub["job_token"]}
    path = f"/api/v1/jobs/{sub['job_id']}/events"

    async def open_stream(client_ip: str) -> AsgiCall:
        call = AsgiCall(app, "GET", path, headers=hdr, client=(client_ip, 5000)).start()
        await asyncio.wait_for(call.started.wait(), WAIT)
        return call

    a1, a2 = await open_stream("198.51.100.1"), await open_stream("198.51.100.1")
    assert (a1.status, a2.status) == (200, 200)
    a3 = await open_stream("198.51.100.1")
    await a3.finished()
    assert a3.status == 429 and a3.json()["error"]["code"] == "too_many_streams"  # the client's share
    b1 = await open_stream("198.51.100.2")
    assert b1.status == 200
    c1 = await open_stream("198.51.100.3")
    await c1.finished()
    assert c1.status == 503 and c1.json()["error"]["code"] == "too_many_streams"  # the server's total
    assert int(a3.headers["retry-after"]) >= 1 and int(c1.headers["retry-after"]) >= 1
    a1.disconnect()  # a client that hangs up gives its slot back
    await a1.finished()
    c2 = await open_stream("198.51.100.3")
    assert c2.status == 200
    gate.set()  # the job ends: every stream ends, and every slot is free again
    for call in (a2, b1, c2):
        await call.finished()
        assert "event: end" in call.text()
    again = [await open_stream("198.51.100.4") for _ in range(2)]
    for call in again:
        await call.finished()
        assert call.status == 200
