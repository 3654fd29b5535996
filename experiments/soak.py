"""Soak: scripted mixed traffic against a live server for a given duration (loopback only,
bounded), then a report: requests by outcome, p50/p95 latency per quality, RSS at start and
end, and any 5xx other than the deliberate ones.

    python -m experiments.soak --duration 1800 --workers 3      # starts its own server
    python -m experiments.soak --url http://127.0.0.1:8080 --duration 120

Writes experiments/results/soak.json and .md (--name to change).
"""
from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter, defaultdict

import httpx

from experiments.common import pct, write_results

PROMPTS = ["The capital of France is", "Two plus three equals", "Alice gave Bob a book because he",
           "The chemical symbol for gold is", "def add(a, b):\n    return", "Monday, Tuesday, Wednesday,"]


def traffic(client: httpx.Client, rng: random.Random, outcomes: Counter, latency: dict, unexpected: list,
            stop: float) -> None:
    while time.monotonic() < stop:
        kind = rng.choices(["valid", "invalid", "overlimit", "cancel", "async"], weights=[5, 3, 1, 1, 2])[0]
        quality = rng.choice(["fast", "fast", "balanced"])
        body = {"prompt": rng.choice(PROMPTS), "quality": quality,
                "target": {"position": rng.randint(2, 3), "chat": False}}  # every prompt has >= 4 tokens
        t0 = time.perf_counter()
        try:
            if kind == "invalid":
                bad = rng.choice([{"prompt": ""}, {"prompt": "x", "target": {"position": 99, "chat": False}},
                                  {"prompt": "x", "quality": "turbo"}, {"prompt": 5}])
                r = client.post("/api/v1/explain", json=bad)
                expected = r.status_code in (400, 422, 429, 503)
            elif kind == "overlimit":  # past a limit: body size, prompt length, new tokens, long context
                r = rng.choice([
                    lambda: client.post("/api/v1/explain", content=b'{"prompt": "' + b"a" * 70_000 + b'"}',
                                        headers={"content-type": "application/json"}),
                    lambda: client.post("/api/v1/explain", json={"prompt": "word " * 4_500}),
                    lambda: client.post("/api/v1/explain", json={"prompt": "x", "target": {"generated": 0,
                                                                                            "max_new_tokens": 10_000}}),
                ])()
                expected = r.status_code in (400, 413, 422, 429, 503)
            elif kind in ("cancel", "async"):
                r = client.post("/api/v1/explain", json={**body, "async": True})
                expected = r.status_code in (202, 429, 503)
                if r.status_code == 202:
                    job = r.json()["job_id"]
                    own = {"x-job-token": r.json()["job_token"]}  # jobs answer only their submitter
                    if kind == "cancel":
                        client.delete(f"/api/v1/jobs/{job}", headers=own)
                    while time.monotonic() < stop + 120:
                        st = client.get(f"/api/v1/jobs/{job}", headers=own).json()["state"]
                        if st in ("done", "failed", "cancelled"):
                            break
                        time.sleep(0.3)
            else:
                r = client.post("/api/v1/explain", json=body)
                expected = r.status_code in (200, 429, 503, 504)
                if r.status_code == 200:
                    latency[quality].append(time.perf_counter() - t0)
            outcomes[f"{kind} {r.status_code}"] += 1
            if r.status_code >= 500 and r.status_code not in (503, 504):
                unexpected.append({"kind": kind, "status": r.status_code, "body": r.text[:200]})
            elif not expected:
                unexpected.append({"kind": kind, "status": r.status_code, "body": r.text[:200]})
            if r.status_code in (429, 503):
                time.sleep(min(5.0, float(r.headers.get("retry-after", 1))))
        except httpx.HTTPError as err:
            outcomes[f"{kind} transport-error"] += 1
            unexpected.append({"kind": kind, "status": None, "body": type(err).__name__})


def rss_of_server(client: httpx.Client) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("heta_process_rss_bytes"):
            return float(line.split()[-1])
    return None


def soak(url: str, duration: float, workers: int, seed: int = 0, sample_every: float = 60.0) -> dict:
    outcomes: Counter = Counter()
    latency: dict = defaultdict(list)
    unexpected: list = []
    t_start = time.monotonic()
    stop = t_start + duration
    rss_series: list[tuple[float, float | None]] = []
    with httpx.Client(base_url=url, timeout=300) as c:
        rss_start = rss_of_server(c)
        threads = [threading.Thread(target=traffic, args=(httpx.Client(base_url=url, timeout=300),
                                                          random.Random(seed + i), outcomes, latency, unexpected,
                                                          stop)) for i in range(workers)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):  # the server's RSS over time: growth shows as a slope
            rss_series.append((round(time.monotonic() - t_start, 1), rss_of_server(c)))
            for t in threads:
                t.join(timeout=sample_every / max(len(threads), 1))
        rss_end = rss_of_server(c)
        healthy = c.get("/api/v1/health").status_code == 200
    half = [(t, r) for t, r in rss_series if r is not None and t >= duration / 2]
    slope = None
    if len(half) >= 3:  # MiB per hour over the second half (after warm-up)
        import numpy as np

        ts, rs = np.array(half, float).T
        slope = float(np.polyfit(ts / 3600, rs / 2**20, 1)[0])
    return {"duration_s": duration, "workers": workers, "outcomes": dict(outcomes),
            "latency": {q: {"n": len(v), "p50_s": pct(v, 50), "p95_s": pct(v, 95)} for q, v in latency.items()},
            "rss_start_bytes": rss_start, "rss_end_bytes": rss_end, "rss_series": rss_series,
            "rss_slope_second_half_mib_per_h": slope, "unexpected": unexpected, "healthy_after": healthy}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="a running server (default: start one on a free loopback port)")
    ap.add_argument("--duration", type=float, default=120)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--name", default="soak")
    args = ap.parse_args(argv)
    srv = None
    url = args.url
    if url is None:
        from tests.conftest import LiveServer
        import tempfile

        srv = LiveServer(tempfile.mkdtemp(), "--rate-limit", "120", "--max-queued", "4", "--client-jobs", "4")
        url = srv.url
    try:
        res = soak(url, args.duration, args.workers)
    finally:
        if srv is not None:
            srv.stop()
    rows = [[k, v] for k, v in sorted(res["outcomes"].items())]
    rows += [[f"latency {q} p50 / p95 s (n={v['n']})", f"{v['p50_s']:.2f} / {v['p95_s']:.2f}"]
             for q, v in res["latency"].items()]
    rows += [["RSS start / end MiB", f"{(res['rss_start_bytes'] or 0) / 2**20:.0f} / "
                                     f"{(res['rss_end_bytes'] or 0) / 2**20:.0f}"],
             ["RSS slope, second half (MiB/h)", "-" if res["rss_slope_second_half_mib_per_h"] is None
              else f"{res['rss_slope_second_half_mib_per_h']:+.1f}"],
             ["unexpected responses", len(res["unexpected"])], ["healthy after", res["healthy_after"]]]
    cmd = "python -m experiments.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    write_results(args.name, res, ["outcome", "count / value"], rows, cmd.strip(),
                  notes="Deliberate errors: 400/422 (invalid), 413/422 (overlimit: 70 kB body, 4,500-word prompt, "
                        "10,000 new tokens), 429 (rate limit), 503 (queue full), 504 (time limit). 'unexpected' = "
                        "any other status, a 5xx other than 503/504, or a transport error.")
    sys.exit(0 if not res["unexpected"] and res["healthy_after"] else 1)


if __name__ == "__main__":
    main()
