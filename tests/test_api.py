"""The REST API on a live server (loopback): reports, jobs, progress stream, cancel, limits,
the bad-input corpus, and logs that never contain a prompt."""
import json
import time

import httpx
import pytest

from experiments.bad_inputs import corpus, run
from heta_lite.report import validate_report
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow
SECRET_PROMPTS = ["The secret launch code is banana", "Zyxwv private memo about Quokka"]


def test_sync_explain_returns_a_valid_report(live_server):
    r = httpx.post(live_server.url + "/api/v1/explain", timeout=120,
                   json={"prompt": SECRET_PROMPTS[0], "target": {"position": 4, "chat": False}, "quality": "fast"})
    assert r.status_code == 200, r.text
    validate_report(r.json())
    assert r.headers["x-request-id"]


def test_async_job_progress_stream_and_cancel(live_server):
    c = httpx.Client(base_url=live_server.url, timeout=120)
    r = c.post("/api/v1/explain", json={"prompt": SECRET_PROMPTS[1], "target": {"position": 5, "chat": False},
                                        "quality": "balanced", "async": True})
    assert r.status_code == 202
    job = r.json()["job_id"]
    events = []
    with c.stream("GET", f"/api/v1/jobs/{job}/events") as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
            if line.startswith("event: end"):
                break
    assert any(e.get("progress", {}).get("stage") for e in events)
    final = c.get(f"/api/v1/jobs/{job}").json()
    assert final["state"] == "done"
    validate_report(final["report"])
    # a slow job, cancelled while it runs
    r = c.post("/api/v1/explain", json={"prompt": "word " * 60, "target": {"position": 50, "chat": False},
                                        "quality": "accurate", "async": True})
    job = r.json()["job_id"]
    time.sleep(1.0)
    assert c.delete(f"/api/v1/jobs/{job}").status_code == 200
    for _ in range(100):
        if c.get(f"/api/v1/jobs/{job}").json()["state"] == "cancelled":
            break
        time.sleep(0.2)
    assert c.get(f"/api/v1/jobs/{job}").json()["state"] == "cancelled"
    assert c.get("/api/v1/health").json()["model_loaded"]


def test_bad_input_corpus_gets_clear_4xx_and_server_stays_up(live_server):
    cases = corpus()
    assert len(cases) >= 60
    rows = run(live_server.url, cases)
    failures = [r for r in rows if not r["ok"]]
    assert not failures, failures
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
        assert r429 and int(r429[0].headers["retry-after"]) >= 1
        assert r429[0].json()["error"]["code"] == "rate_limited"
        for r in statuses:
            if r.status_code == 202:
                c.delete(f"/api/v1/jobs/{r.json()['job_id']}")
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


def test_short_soak_has_no_unexpected_responses(live_server):
    """CI's bounded soak (the release soak is experiments/soak.py --duration 7200)."""
    from experiments.soak import soak

    res = soak(live_server.url, duration=float(__import__("os").environ.get("HETA_SOAK_S", "60")), workers=3)
    assert res["healthy_after"]
    assert not res["unexpected"], res["unexpected"][:5]
    assert sum(res["outcomes"].values()) >= 10
