"""The REST API on a live server (loopback): reports, jobs, progress stream, cancel, limits,
the bad-input corpus, and logs that never contain a prompt.

This module's shared server has per-client limits no test here can reach. The tests on it
(above all the bad-input corpus: ~70 requests from one client, most of them answered in
milliseconds on a fast machine) ask what the API answers to a request, and that answer must not
depend on how many requests came before: with the default 30/min and a burst of 10, the corpus's
last valid cases got 429 on a GPU. The limits themselves are tested where they are the subject:
tests/serving/test_limits_ratelimit.py (the arithmetic, with an injected clock, and the API in process),
test_rate_limit_and_full_queue (a server of its own with tight limits) and the soak (a server of
its own with the shipped limits).
"""
import json
import time

import httpx
import pytest

from experiments.bad_inputs import corpus, run
from heta_lite.report import validate_report
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow
SECRET_PROMPTS = ["The secret launch code is banana", "Zyxwv private memo about Quokka"]
UNREACHABLE_LIMITS = ("--rate-limit", "1000000", "--client-jobs", "1000")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """The module's server, with limits out of reach (see the module docstring)."""
    srv = LiveServer(tmp_path_factory.mktemp("srv"), *UNREACHABLE_LIMITS)
    yield srv
    srv.stop()


def _until_state(c: httpx.Client, job: str, states: tuple[str, ...], timeout: float = 120.0,
                 token: str = "") -> str:
    """Poll the job's state until it is one of `states` (or the deadline passes); returns the last."""
    deadline = time.monotonic() + timeout
    hdr = {"x-job-token": token}
    state = c.get(f"/api/v1/jobs/{job}", headers=hdr).json()["state"]
    while state not in states and time.monotonic() < deadline:
        time.sleep(0.1)
        state = c.get(f"/api/v1/jobs/{job}", headers=hdr).json()["state"]
    return state


def test_sync_explain_returns_a_valid_report(live_server):
    r = httpx.post(live_server.url + "/api/v1/explain", timeout=120,
                   json={"prompt": SECRET_PROMPTS[0], "target": {"position": 4, "chat": False}, "quality": "fast"})
    assert r.status_code == 200, r.text
    validate_report(r.json())
    assert r.headers["x-request-id"]
    rep = r.json()  # issue #14: the frame, the chosen gate and the faithfulness check, unasked
    assert (rep["settings"]["frame"], rep["settings"]["gate"]) == ("auto", "last-quarter")
    assert rep["tokens"][0]["origin"] == "frame" and rep["faithfulness_check"]["verdict"]
    assert rep["faithfulness_check"]["p_before"] == rep["target"]["prob"]


def test_async_job_progress_stream_and_cancel(live_server):
    c = httpx.Client(base_url=live_server.url, timeout=120)
    r = c.post("/api/v1/explain", json={"prompt": SECRET_PROMPTS[1], "target": {"position": 5, "chat": False},
                                        "quality": "balanced", "async": True})
    assert r.status_code == 202
    job, hdr = r.json()["job_id"], {"x-job-token": r.json()["job_token"]}
    assert c.get(f"/api/v1/jobs/{job}").status_code == 404  # the id alone is not enough
    events = []
    with c.stream("GET", f"/api/v1/jobs/{job}/events", headers=hdr) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
            if line.startswith("event: end"):
                break
    assert any(e.get("progress", {}).get("stage") for e in events)
    final = c.get(f"/api/v1/jobs/{job}", headers=hdr).json()
    assert final["state"] == "done"
    validate_report(final["report"])
    # a slow job, cancelled while it runs
    r = c.post("/api/v1/explain", json={"prompt": "word " * 60, "target": {"position": 50, "chat": False},
                                        "quality": "accurate", "async": True})
    assert r.status_code == 202
    job, token = r.json()["job_id"], r.json()["job_token"]
    assert _until_state(c, job, ("running", "done", "failed", "cancelled"), token=token) == "running"  # takes minutes
    d = c.delete(f"/api/v1/jobs/{job}", headers={"x-job-token": token})
    assert d.status_code == 200 and d.json()["cancel_requested"]
    assert _until_state(c, job, ("done", "failed", "cancelled"), token=token) == "cancelled"
    assert "report" not in c.get(f"/api/v1/jobs/{job}", headers={"x-job-token": token}).json()
    assert c.get("/api/v1/health").json()["model_loaded"]


def test_a_sync_request_dropped_by_its_client_frees_the_worker(live_server):
    """Issue #18 item 1 on a real server: a sync 'accurate' request whose client gives up (read
    timeout: the connection closes) no longer holds the worker until the 600 s time limit."""
    body = {"prompt": "word " * 60, "target": {"position": 50, "chat": False}, "quality": "accurate"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(live_server.url + "/api/v1/explain", json=body, timeout=httpx.Timeout(10.0, read=3.0))
    deadline = time.monotonic() + 120  # the job stops at its next safe point, minutes before its time limit
    running = httpx.get(live_server.url + "/api/v1/health").json()["running"]
    while running and time.monotonic() < deadline:
        time.sleep(0.2)
        running = httpx.get(live_server.url + "/api/v1/health").json()["running"]
    assert running == 0


def test_bad_input_corpus_gets_clear_4xx_and_server_stays_up(live_server):
    cases = corpus()
    assert len(cases) >= 60
    rows = run(live_server.url, cases, timeout=600)  # a bound against hangs: odd valid text takes ~100 s on a busy CPU
    failures = [r for r in rows if not r["ok"]]
    assert not failures, failures
    assert not any(r["status"] == 429 or r["rate_retries"] for r in rows)  # answers to the cases, not to the limiter
    assert httpx.get(live_server.url + "/api/v1/health").status_code == 200


def test_logs_and_metrics_never_contain_prompts(live_server):
    httpx.post(live_server.url + "/api/v1/explain", timeout=120,
               json={"prompt": SECRET_PROMPTS[0], "target": {"position": 3, "chat": False}})
    metrics = httpx.get(live_server.url + "/metrics").text
    assert "heta_requests_total" in metrics and "heta_process_rss_bytes" in metrics
    log = live_server.log()
    assert '"route": "/api/v1/explain"' in log  # requests are logged ...
    for p in SECRET_PROMPTS:
        for needle in (p, p.split()[1], "banana", "Quokka"):
            assert needle not in log and needle not in metrics  # ... their text never


def test_rate_limit_and_full_queue(tmp_path):
    srv = LiveServer(tmp_path, "--rate-limit", "6", "--max-queued", "1", "--client-jobs", "5")
    try:
        c = httpx.Client(base_url=srv.url, timeout=60)
        body = {"prompt": "word " * 40, "target": {"position": 30, "chat": False}, "quality": "accurate",
                "async": True}
        statuses = [c.post("/api/v1/explain", json=body) for _ in range(4)]
        codes = [r.status_code for r in statuses]
        assert 503 in codes, codes  # 1 running + 1 queued, then the queue is full
        full = next(r for r in statuses if r.status_code == 503)
        assert full.json()["error"]["code"] == "queue_full" and int(full.headers["retry-after"]) >= 1
        limited = [c.post("/api/v1/explain", json=body) for _ in range(10)]
        r429 = [r for r in limited if r.status_code == 429]
        assert r429 and r429[0].json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r429[0].headers["retry-after"]) <= 11  # at most one token's time (10 s) at 6/min, rounded up
        for r in statuses:
            if r.status_code == 202:
                c.delete(f"/api/v1/jobs/{r.json()['job_id']}", headers={"x-job-token": r.json()["job_token"]})
        assert c.get("/api/v1/health").status_code == 200
    finally:
        srv.stop()


def test_admin_actions_need_a_token(tmp_path, monkeypatch):
    monkeypatch.setenv("HETA_LITE_ADMIN_TOKEN", "s3cret")
    srv = LiveServer(tmp_path)
    try:
        assert httpx.post(srv.url + "/api/v1/admin/clear-cache").status_code == 403
        r = httpx.post(srv.url + "/api/v1/admin/clear-cache", headers={"x-admin-token": "s3cret"})
        assert r.status_code == 200
        # the model registry on the real server: listed for admins only, users can't trigger loads
        assert httpx.get(srv.url + "/api/v1/admin/models").json()["error"]["code"] == "forbidden"
        listed = httpx.get(srv.url + "/api/v1/admin/models", headers={"x-admin-token": "s3cret"}).json()
        assert [(m["model"], m["quant"], m["state"], m["primary"]) for m in listed["models"]] == \
            [("smollm2-135m", "none", "ready", True)] and listed["max_models"] == 2
        r = httpx.post(srv.url + "/api/v1/explain", json={"prompt": "Hello there", "quant": "8bit"}, timeout=60)
        assert r.status_code == 409 and r.json()["error"]["code"] == "model_not_loaded"
        assert len(httpx.get(srv.url + "/api/v1/admin/models", headers={"x-admin-token": "s3cret"}).json()["models"]) == 1
        assert httpx.get(srv.url + "/api/v1/health").json()["models"][0]["primary"] is True
    finally:
        srv.stop()


def test_short_soak_has_no_unexpected_responses(tmp_path):
    """CI's bounded soak (the release soak is experiments/soak.py --duration 7200), on a server of
    its own with the shipped limits: mixed traffic from one client meets the rate limit and the
    job cap (429 is an expected answer there), which the module's server keeps out of reach. It
    includes issue #18's attacks (a stranger with no or a wrong job token, a forged Host, a
    cross-origin socket.io poll, a non-ASCII admin token, an oversized chunked body, too many event
    streams) and abandoned sync requests: every kind is sent at least once whatever the duration,
    each gets only the statuses it expects, and a worker computes for a request nobody waits for
    only until the job's next safe point, never for the rest of the job."""
    import os

    from experiments.soak import KINDS, soak

    srv = LiveServer(tmp_path)
    try:
        workers = 3
        res = soak(srv.url, duration=float(os.environ.get("HETA_SOAK_S", "30")), workers=workers,
                   server_pid=srv.proc.pid, sample_every=5.0)
    finally:
        srv.stop()
    assert res["healthy_after"]
    assert not res["unexpected"], res["unexpected"][:5]
    # every worker sent at least one request and got an answer (how many fit in the time is the
    # machine's speed, not something to assert)
    assert sum(res["outcomes"].values()) >= workers
    assert set(res["by_kind"]) == set(KINDS), res["by_kind"]
    assert res["by_kind"]["stranger"].get("404", 0) >= 6  # read, stream, cancel; no token and a wrong one
    assert set(res["by_kind"]["streams"]) & {"429", "503"}, res["by_kind"]["streams"]  # the cap was reached
    baa = res["busy_after_abandon_s"]
    assert baa["n"] >= 1, res["by_kind"]["abandon"]
    # the disconnect cancels the job: the worker is free within seconds (it stops at the next safe
    # point), not after the job's full run or the 600 s time limit
    assert baa["max"] < 20.0, baa
    assert res["rss_source"] == "psutil" and all(r for _, r in res["rss_series"]), res["rss_series"]
    assert res["worker_busy_fraction"] is not None
