"""POST /api/v1/explain/batch and the `head_importance` option (issue #17 item 6).

A batch is one job: its items run in order, each answers its report or its own error, progress
names the running item, cancelling stops them all. It counts one job against the client's cap and
one rate-limit token per item, and it is bounded (items, characters and tokens in all).

Most tests run the API in process on a stub model whose per-item work (`explain_jobs._explain_one`) is
replaced: what they check is the route and the job around it, not the explanations. The tests on
the real offline model (SmolLM2, marked slow by their fixture) check real reports, a real bad
target, the token total with the real tokenizer and head importance, with the cheap `saliency`
method on short prompts."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import gui.serving.explain_jobs as explain_jobs
from gui.serving import register_api
from gui.serving.ratelimit import Limits, RateLimiter
from gui.serving.schemas import MAX_BATCH_CHARS, MAX_BATCH_ITEMS, MAX_BATCH_TOKENS, MAX_PROMPT_CHARS
from gui.serving.telemetry import REQUEST_TEXT
from gui.state import AppState
from heta_lite.errors import InputError
from heta_lite.jobs import CANCELLED, DONE, FINISHED, JobQueue
from heta_lite.report import Report
from tests.serving.asgi_call import AsgiCall

BATCH = "/api/v1/explain/batch"
WAIT = 10.0
OPEN = Limits(requests_per_minute=6000, burst=1000, concurrent_jobs=100)


def _app(state: AppState, limits: Limits = OPEN, limiter: RateLimiter | None = None) -> FastAPI:
    app = FastAPI()
    register_api(app, state, limits, limiter=limiter)
    return app


def _items(*prompts: str, position: int = 1) -> list[dict]:
    return [{"prompt": p, "target": {"position": position, "chat": False}} for p in prompts]


def _poll(c: TestClient, job: dict, until, timeout: float = WAIT) -> dict:
    """GET the job (with its token) until `until(view)` holds; returns that view."""
    deadline = time.monotonic() + timeout
    while True:
        view = c.get(f"/api/v1/jobs/{job['job_id']}", headers={"x-job-token": job["job_token"]}).json()
        if until(view) or time.monotonic() > deadline:
            return view
        time.sleep(0.02)


# -- on a stub model ------------------------------------------------------------------------------
class _StubLM:
    """Enough of a loaded model for the route: a name, a mode and a tokenizer (one token per word)."""

    quantization = "none"
    name = "stub"

    @staticmethod
    def tokenizer(text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": text.split()}


class Stub:
    """The state, and the stand-in for one item's work: prompts starting with "hold" wait for
    `release` (stepping, so a cancel stops them), "bad" raises an InputError, "bug" a RuntimeError."""

    def __init__(self) -> None:
        self.state = AppState(model_name="smollm2-135m", queue=JobQueue(concurrency=1))
        self.state.lm = _StubLM()
        self.release, self.holding = threading.Event(), threading.Event()
        self.ran: list[str] = []

    def explain_one(self, lm, prompt, target, settings, method, control, cache, heads):
        self.ran.append(prompt)
        control.step("attribution", 0, 1)
        if prompt.startswith("hold"):
            self.holding.set()
            while not self.release.wait(0.02):
                control.step("attribution", 0, 1)
        if prompt.startswith("bad"):
            raise InputError("Target position 500 is outside the text: it has 4 tokens.", "target_pos")
        if prompt.startswith("bug"):
            raise RuntimeError("a bug")
        return {"prompt_words": len(prompt.split()), "heads": heads, "method": method}


@pytest.fixture
def stub(monkeypatch):
    s = Stub()
    monkeypatch.setattr(explain_jobs, "_explain_one", s.explain_one)
    try:
        yield s
    finally:
        s.release.set()
        s.state.queue.shutdown(wait_s=WAIT)


def test_items_run_in_order_and_a_failing_item_does_not_stop_the_others(stub):
    with TestClient(_app(stub.state)) as c:
        r = c.post(BATCH, json={"items": _items("one two", "bad target here", "bug in this one", "four five six"),
                                "method": "saliency", "head_importance": True})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["n_ok"], out["n_failed"]) == (2, 2) and [it["index"] for it in out["items"]] == [0, 1, 2, 3]
    assert out["items"][0]["report"] == {"prompt_words": 2, "heads": True, "method": "saliency"}
    assert out["items"][3]["report"]["prompt_words"] == 3
    bad = out["items"][1]["error"]
    assert bad["code"] == "bad_input" and "outside the text" in bad["message"] and bad["field"] == "target_pos"
    assert out["items"][2]["error"] == {"code": "internal", "message": "Internal error; the server keeps running."}
    assert stub.ran == ["one two", "bad target here", "bug in this one", "four five six"]


def test_an_async_batch_shows_which_item_runs_and_only_its_owner_sees_it(stub):
    with TestClient(_app(stub.state)) as c:
        r = c.post(BATCH, json={"items": _items("first item", "hold the second", "third item"), "async": True})
        assert r.status_code == 202, r.text
        job = r.json()
        assert set(job) >= {"job_id", "job_token", "state", "queue_position"}
        running = _poll(c, job, lambda v: v["progress"]["stage"].startswith("item 2/3"))
        assert running["state"] == "running" and running["kind"] == "explain_batch"
        assert running["progress"]["stage"] == "item 2/3: attribution", running["progress"]
        # a stranger (no token, a wrong one) sees nothing of it: read, stream, cancel
        for hdr in ({}, {"x-job-token": "guess"}):
            assert c.get(f"/api/v1/jobs/{job['job_id']}", headers=hdr).status_code == 404
            assert c.get(f"/api/v1/jobs/{job['job_id']}/events", headers=hdr).status_code == 404
            assert c.delete(f"/api/v1/jobs/{job['job_id']}", headers=hdr).status_code == 404
        stub.release.set()
        done = _poll(c, job, lambda v: v["state"] in FINISHED)
    assert done["state"] == DONE and "report" not in done
    assert done["result"]["n_ok"] == 3 and [it["index"] for it in done["result"]["items"]] == [0, 1, 2]


def test_cancelling_a_batch_stops_every_item(stub):
    with TestClient(_app(stub.state)) as c:
        job = c.post(BATCH, json={"items": _items("hold the first", "second item", "third item"),
                                  "async": True}).json()
        assert stub.holding.wait(WAIT)
        d = c.delete(f"/api/v1/jobs/{job['job_id']}", headers={"x-job-token": job["job_token"]})
        assert d.status_code == 200 and d.json()["cancel_requested"]
        final = _poll(c, job, lambda v: v["state"] in FINISHED)
    assert final["state"] == CANCELLED and "result" not in final
    assert stub.ran == ["hold the first"]  # the later items never ran


def test_items_past_the_time_limit_get_a_timeout_and_the_finished_keep_their_reports(stub):
    stub.state.queue.time_limit_s = 0.3  # the batch's one limit: "hold" steps past it
    with TestClient(_app(stub.state)) as c:
        r = c.post(BATCH, json={"items": _items("quick one", "hold two", "three")})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["n_ok"], out["n_failed"]) == (1, 2) and out["items"][0]["report"]["prompt_words"] == 2
    assert [it["error"]["code"] for it in out["items"][1:]] == ["timeout", "timeout"]
    assert stub.ran == ["quick one", "hold two"]


async def test_a_sync_batch_whose_client_hangs_up_is_cancelled(stub):
    call = AsgiCall(_app(stub.state), "POST", BATCH, {"items": _items("hold on", "never runs")}).start()
    assert await asyncio.to_thread(stub.holding.wait, WAIT)
    (job,) = list(stub.state.queue._jobs.values())
    call.disconnect()
    await call.finished(WAIT)
    assert call.status == 499 and call.json()["error"]["code"] == "client_closed_request"
    assert (await asyncio.to_thread(stub.state.queue.wait, job.id, WAIT)).state == CANCELLED
    assert stub.ran == ["hold on"]


def test_every_prompt_stays_registered_as_secret_until_the_batch_ends(stub):
    secrets = ["hold: the first secret memo", "the second secret memo", "the third secret memo"]
    with TestClient(_app(stub.state)) as c:
        job = c.post(BATCH, json={"items": _items(*secrets), "async": True}).json()
        assert stub.holding.wait(WAIT)
        assert all(s in REQUEST_TEXT for s in secrets)  # the log filter redacts all of them meanwhile
        stub.release.set()
        assert _poll(c, job, lambda v: v["state"] in FINISHED)["state"] == DONE
    assert not any(s in REQUEST_TEXT for s in secrets)


@pytest.mark.parametrize("items, field", [
    ([], "items"),                                                                # no items
    ([{"prompt": "a b"}] * (MAX_BATCH_ITEMS + 1), "items"),                       # 17 items
    ([{"prompt": "a b", "target": {"position": "two"}}], "items.0.target.position"),  # wrong type
    ([{"prompt": 42}], "items.0.prompt"),
    ([{"prompt": "a b", "colour": "red"}], "items.0.colour"),                     # unknown item field
    ([{"prompt": "a" * (MAX_PROMPT_CHARS + 1)}], "items.0.prompt"),               # one prompt too long
])
def test_malformed_batches_are_refused_before_anything_runs(stub, items, field):
    with TestClient(_app(stub.state)) as c:
        r = c.post(BATCH, json={"items": items})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert r.json()["error"]["field"] == field, r.json()
    assert stub.ran == [] and not stub.state.queue._jobs


@pytest.mark.parametrize("item, field, words", [
    ({"prompt": "   "}, "items.1.prompt", "empty"),
    ({"prompt": "a b", "target": {"position": 1, "generated": 0}}, "items.1.target", "not both"),
])
def test_a_bad_item_is_named_by_its_index_and_nothing_is_queued(stub, item, field, words):
    with TestClient(_app(stub.state)) as c:
        r = c.post(BATCH, json={"items": [{"prompt": "fine text"}, item, {"prompt": "more text"}]})
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "bad_input" and err["field"] == field
    assert err["message"].startswith("Item at index 1: ") and words in err["message"]
    assert stub.ran == [] and not stub.state.queue._jobs


def test_the_batch_totals_are_bounded(stub, monkeypatch):
    with TestClient(_app(stub.state)) as c:
        big = MAX_BATCH_CHARS // 3 + 1  # each prompt within MAX_PROMPT_CHARS, the three over the total
        r = c.post(BATCH, json={"items": _items(*["x " * (big // 2)] * 3)})
        err = r.json()["error"]
        assert r.status_code == 413 and err["code"] == "batch_too_large" and err["field"] == "items"
        assert f"{MAX_BATCH_CHARS:,}" in err["message"] and "characters" in err["message"]
        monkeypatch.setattr(explain_jobs, "MAX_BATCH_TOKENS", 5)
        assert c.post(BATCH, json={"items": _items("one two", "three four five")}).status_code == 200  # 5 tokens
        r = c.post(BATCH, json={"items": _items("one two", "three four five six")})  # 6
        err = r.json()["error"]
        assert r.status_code == 413 and err["code"] == "batch_too_large" and "6 tokens" in err["message"]
        assert "the limit is 5 " in err["message"]
    assert stub.ran == ["one two", "three four five"]


def test_a_batch_takes_one_rate_limit_token_per_item(stub):
    from tests.serving.test_limits_ratelimit import FakeClock

    limiter = RateLimiter(Limits(requests_per_minute=6, burst=5, concurrent_jobs=10), clock=FakeClock())
    with TestClient(_app(stub.state, limiter=limiter)) as c:
        assert c.post(BATCH, json={"items": _items("a", "b", "c")}).status_code == 200  # 2 tokens left
        r = c.post(BATCH, json={"items": _items("d", "e", "f")})
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert 10 <= int(r.headers["retry-after"]) <= 11  # one more token at 6/min: 10 s
        assert c.post(BATCH, json={"items": _items("g", "h")}).status_code == 200  # exactly what was left
        assert c.post(BATCH, json={"items": _items("i")}).status_code == 429
    assert stub.ran == ["a", "b", "c", "g", "h"]


def test_a_batch_counts_as_one_job_against_the_concurrent_cap(stub):
    limits = Limits(requests_per_minute=6000, burst=1000, concurrent_jobs=1)
    with TestClient(_app(stub.state, limits)) as c:
        job = c.post(BATCH, json={"items": _items("hold one", "two", "three"), "async": True})
        assert job.status_code == 202
        assert stub.holding.wait(WAIT)
        for path, body in ((BATCH, {"items": _items("more")}), ("/api/v1/explain", {"prompt": "Hello there"})):
            r = c.post(path, json={**body, "async": True})
            assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_jobs", r.text
        stub.release.set()
        assert _poll(c, job.json(), lambda v: v["state"] in FINISHED)["state"] == DONE
        assert c.post(BATCH, json={"items": _items("next")}).status_code == 200  # the place is free again


# -- the limiter's cost per request ---------------------------------------------------------------
def test_take_n_uses_n_tokens_or_none():
    from tests.serving.test_limits_ratelimit import FakeClock

    clock = FakeClock()
    lim = RateLimiter(Limits(requests_per_minute=60, burst=5), clock=clock)  # a token per second
    assert lim.take("a", 3) == 0.0  # 2 left
    assert lim.take("a", 3) == pytest.approx(1.0)  # one short: a second; nothing used
    assert lim.take("a", 2) == 0.0 and lim.take("a") == pytest.approx(1.0)
    clock.advance(5.0)
    # more than the burst: only with a full bucket, which it leaves in debt (one token per item still)
    assert lim.take("a", 8) == 0.0
    assert lim.take("a") == pytest.approx(4.0)  # from -3 back to 1
    clock.advance(3.0)
    assert lim.take("a", 8) == pytest.approx(5.0)  # at 0: the full burst is 5 s away
    clock.advance(4.0)
    assert lim.take("a") == 0.0


# -- on the real offline model --------------------------------------------------------------------
@pytest.fixture(scope="module")
def real(smollm):
    """The offline model behind the API; torch on one thread meanwhile: on a busy shared CPU two
    threads made these tests 7x slower (head importance: 140 s instead of 19 s)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    state = AppState(model_name="smollm2-135m", queue=JobQueue(concurrency=1))
    state.lm = smollm
    try:
        yield state
    finally:
        state.queue.shutdown(wait_s=60)
        torch.set_num_threads(threads)


def _heads_shape_ok(doc: dict, lm) -> bool:
    hi = doc["head_importance"]
    layers, heads = len(lm.arch.blocks(lm.model)), lm.dims.num_heads
    return (hi["layers"], hi["heads"]) == (layers, heads) and len(hi["drop"]) == layers and \
        all(len(row) == heads for row in hi["drop"])


def test_a_real_batch_with_a_target_outside_its_text(real):
    items = [{"prompt": "The capital of France is Paris", "target": {"position": 4, "chat": False}},
             {"prompt": "Hello world", "target": {"position": 500, "chat": False}},
             {"prompt": "One two three four five", "target": {"position": 3, "chat": False}}]
    with TestClient(_app(real)) as c:
        r = c.post(BATCH, json={"items": items, "method": "saliency", "quality": "fast"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["n_ok"], out["n_failed"]) == (2, 1)
    ok0, bad, ok2 = out["items"]
    assert (ok0["index"], bad["index"], ok2["index"]) == (0, 1, 2)
    for it in (ok0, ok2):
        Report.from_dict(it["report"])  # a valid v1 report
        assert it["report"]["method"] == "saliency" and "head_importance" not in it["report"]
    assert bad["error"]["code"] == "bad_input" and "outside the text" in bad["error"]["message"]
    assert "report" not in bad


def test_head_importance_only_when_asked(real, smollm):
    """On /explain (a batch passes the same flag to each item: the stub test above). A short context:
    head importance costs one forward of every head's copy per layer (~20 s on one busy CPU here)."""
    body = {"prompt": "Hello world", "target": {"position": 2, "chat": False}, "method": "saliency",
            "quality": "fast"}
    with TestClient(_app(real)) as c:
        plain = c.post("/api/v1/explain", json=body)
        heads = c.post("/api/v1/explain", json={**body, "head_importance": True})
    assert plain.status_code == heads.status_code == 200, (plain.text, heads.text)
    assert "head_importance" not in plain.json()
    Report.from_dict(heads.json())
    assert _heads_shape_ok(heads.json(), smollm)


def test_the_token_total_is_counted_with_the_real_tokenizer(real):
    prompt = "word " * 300  # ~300 tokens each: 16 of them are over 4096 (and far under the character total)
    jobs = len(real.queue._jobs)
    with TestClient(_app(real)) as c:
        r = c.post(BATCH, json={"items": _items(*[prompt] * MAX_BATCH_ITEMS), "method": "saliency"})
    err = r.json()["error"]
    assert r.status_code == 413 and err["code"] == "batch_too_large"
    assert f"the limit is {MAX_BATCH_TOKENS:,}" in err["message"] and "tokens" in err["message"]
    assert len(real.queue._jobs) == jobs  # refused before queueing
