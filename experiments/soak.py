"""Soak: scripted mixed traffic against a live server for a given duration (loopback only,
bounded), then a report: requests by kind and outcome, p50/p95 latency per quality, the server's
RSS over time, the worker's busy time, and every response a kind did not expect.

    python -m experiments.soak --duration 7200 --workers 3      # starts its own server (127.0.0.1)
    python -m experiments.soak --url http://127.0.0.1:8080 --duration 120

Traffic kinds (each with the statuses it expects; any other status, a 5xx other than 503/504 or
a transport error is "unexpected"):
- valid / invalid / overlimit / cancel / async: ordinary use, bad input and limits (below, KINDS);
- the attacks of issue #18: a stranger reading, cancelling or streaming another client's job with
  no or a wrong X-Job-Token (404, and the job is not cancelled); a forged Host header (400: the
  soak's own server is a desktop one, bound to loopback; against --url of a server not in desktop
  mode, pass --any-host); a cross-origin socket.io long-poll (403); a non-ASCII X-Admin-Token
  (403); an oversized chunked body (413); more event streams than the per-client cap (429/503
  beyond it);
- abandon: a sync `balanced` explain whose client hangs up after ABANDON_AFTER_S. It runs alone
  (the other kinds pause, and the server is idle first), so the time from the hang-up until
  /api/v1/health shows no job running or queued is the worker's "busy after abandon" time: the
  time it computed for nobody (max and p95 reported).

Every kind is sent at least once (a first round over all kinds, shared by the workers, even past
--duration), then kinds are drawn at random. The server's RSS is sampled with psutil (its pid:
the soak's own server, or --pid) or else from /metrics; the worker's busy fraction from polling
/api/v1/health once a second.

Writes experiments/results/soak.json and .md (--name to change).
"""
from __future__ import annotations

import argparse
import contextlib
import random
import sys
import threading
import time
from collections import Counter, defaultdict

import httpx

from experiments.common import pct, write_results

PROMPTS = ["The capital of France is", "Two plus three equals", "Alice gave Bob a book because he",
           "The chemical symbol for gold is", "def add(a, b):\n    return", "Monday, Tuesday, Wednesday,"]

#: kind -> (weight in the random phase, the statuses it expects). "timeout" is the abandon kind's
#: own hang-up (the answer it never waited for).
KINDS: dict[str, tuple[int, frozenset]] = {
    "valid": (5, frozenset({200, 429, 503, 504})),
    "invalid": (3, frozenset({400, 422, 429, 503})),
    "overlimit": (1, frozenset({400, 413, 422, 429, 503})),
    "cancel": (1, frozenset({202, 429, 503})),
    "async": (2, frozenset({202, 429, 503})),
    "stranger": (1, frozenset({404})),            # each probe; the owner's submit is not counted
    "forged_host": (1, frozenset({400})),
    "cross_origin_poll": (1, frozenset({403})),
    "admin_non_ascii": (1, frozenset({403})),
    "chunked_oversize": (1, frozenset({413})),
    "streams": (1, frozenset({200, 429, 503})),   # each stream; 429/503 once past the caps
    "abandon": (1, frozenset({"timeout", 200, 429, 503})),
}
NEW_KINDS = ["stranger", "forged_host", "cross_origin_poll", "admin_non_ascii", "chunked_oversize", "streams",
             "abandon"]
ABANDON_AFTER_S = 0.5
STREAMS_PER_CLIENT = 4          # gui/serving/routes.py MAX_STREAMS_PER_CLIENT: the soak opens two more
CHUNKED_BYTES = 512 * 1024      # past the 64 KiB API cap, inside the 1 MiB the server drains before its 413
IDLE_TIMEOUT_S = 120.0          # waiting for the worker to be idle (before and after an abandon)



def near_miss(token: str) -> str:
    """The token with its last character changed: wrong by one character, never equal to it (the
    old `token[:-1] + "A"` was the token itself whenever it ended in "A", 1 time in 64)."""
    return token[:-1] + ("B" if token.endswith("A") else "A")

class Gate:
    """Shared for ordinary traffic, exclusive for the abandon kind (which then runs alone)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self):
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class Soak:
    def __init__(self, url: str, stop: float, desktop: bool = True) -> None:
        self.url, self.stop, self.desktop = url, stop, desktop
        self.outcomes: Counter = Counter()
        self.by_kind: dict[str, Counter] = defaultdict(Counter)
        self.latency: dict = defaultdict(list)
        self.unexpected: list = []
        self.busy_after_abandon: list[float] = []
        self.gate = Gate()
        self.first_round = list(NEW_KINDS) + [k for k in KINDS if k not in NEW_KINDS]
        self._lock = threading.Lock()
        self.kinds = dict(KINDS)
        if not desktop:  # a server not bound to loopback serves any Host (what the route answers anyway)
            self.kinds["forged_host"] = (1, frozenset({200, 403}))

    # -- bookkeeping ---------------------------------------------------------------------------
    def record(self, kind: str, status, body: str = "") -> None:
        with self._lock:
            self.outcomes[f"{kind} {status}"] += 1
            self.by_kind[kind][str(status)] += 1
            bad_5xx = isinstance(status, int) and status >= 500 and status not in (503, 504)
            if bad_5xx or status not in self.kinds[kind][1]:
                self.unexpected.append({"kind": kind, "status": status, "body": body[:200]})

    def fail(self, kind: str, what: str) -> None:
        with self._lock:
            self.outcomes[f"{kind} {what}"] += 1
            self.by_kind[kind][what] += 1
            self.unexpected.append({"kind": kind, "status": None, "body": what})

    def next_kind(self, rng: random.Random) -> str | None:
        with self._lock:
            if self.first_round:
                return self.first_round.pop(0)
        if time.monotonic() >= self.stop:
            return None
        names = list(self.kinds)
        return rng.choices(names, weights=[self.kinds[k][0] for k in names])[0]

    # -- helpers -------------------------------------------------------------------------------
    def body(self, rng: random.Random, quality: str | None = None) -> dict:
        return {"prompt": rng.choice(PROMPTS), "quality": quality or rng.choice(["fast", "fast", "balanced"]),
                "target": {"position": rng.randint(2, 3), "chat": False}}  # every prompt has >= 4 tokens

    def submit_async(self, c: httpx.Client, body: dict) -> tuple[str, dict] | None:
        """An async job of the soak's own (retrying 429/503 for a while): (id, owner headers)."""
        deadline = time.monotonic() + 120
        while True:
            r = c.post("/api/v1/explain", json={**body, "async": True})
            if r.status_code == 202:
                return r.json()["job_id"], {"x-job-token": r.json()["job_token"]}
            if r.status_code not in (429, 503) or time.monotonic() > deadline:
                return None
            time.sleep(min(5.0, float(r.headers.get("retry-after", 1))))

    @staticmethod
    def wait_finished(c: httpx.Client, job: str, own: dict, limit_s: float = 300) -> str:
        deadline = time.monotonic() + limit_s
        while True:
            st = c.get(f"/api/v1/jobs/{job}", headers=own).json().get("state", "?")
            if st in ("done", "failed", "cancelled") or time.monotonic() > deadline:
                return st
            time.sleep(0.3)

    def idle(self, c: httpx.Client) -> bool:
        h = c.get("/api/v1/health").json()
        return h.get("running", 1) == 0 and h.get("queue_depth", 1) == 0

    def wait_idle(self, c: httpx.Client, poll_s: float = 0.05) -> float | None:
        """Seconds until the server has no job running or queued (None: not within IDLE_TIMEOUT_S)."""
        t0 = time.monotonic()
        while not self.idle(c):
            if time.monotonic() - t0 > IDLE_TIMEOUT_S:
                return None
            time.sleep(poll_s)
        return time.monotonic() - t0

    # -- the kinds -----------------------------------------------------------------------------
    def ordinary(self, c: httpx.Client, rng: random.Random, kind: str) -> httpx.Response:
        body = self.body(rng)
        t0 = time.perf_counter()
        if kind == "invalid":
            bad = rng.choice([{"prompt": ""}, {"prompt": "x", "target": {"position": 99, "chat": False}},
                              {"prompt": "x", "quality": "turbo"}, {"prompt": 5}])
            r = c.post("/api/v1/explain", json=bad)
        elif kind == "overlimit":  # past a limit: body size, prompt length, new tokens, long context
            r = rng.choice([
                lambda: c.post("/api/v1/explain", content=b'{"prompt": "' + b"a" * 70_000 + b'"}',
                               headers={"content-type": "application/json"}),
                lambda: c.post("/api/v1/explain", json={"prompt": "word " * 4_500}),
                lambda: c.post("/api/v1/explain", json={"prompt": "x", "target": {"generated": 0,
                                                                                   "max_new_tokens": 10_000}}),
            ])()
        elif kind in ("cancel", "async"):
            r = c.post("/api/v1/explain", json={**body, "async": True})
            if r.status_code == 202:
                job = r.json()["job_id"]
                own = {"x-job-token": r.json()["job_token"]}  # jobs answer only their submitter
                if kind == "cancel":
                    c.delete(f"/api/v1/jobs/{job}", headers=own)
                self.wait_finished(c, job, own, limit_s=max(0.0, self.stop - time.monotonic()) + 120)
        else:
            r = c.post("/api/v1/explain", json=body)
            if r.status_code == 200:
                with self._lock:
                    self.latency[body["quality"]].append(time.perf_counter() - t0)
        self.record(kind, r.status_code, r.text)
        return r

    def stranger(self, c: httpx.Client, rng: random.Random) -> None:
        """Another client's job, without its token: every route answers 404, and it runs on."""
        sub = self.submit_async(c, self.body(rng, "balanced"))
        if sub is None:
            return self.fail("stranger", "owner-submit-refused")
        job, own = sub
        wrong = {"x-job-token": rng.choice(["", "guess", near_miss(own["x-job-token"]), "tökén"]).encode()}
        for hdr in ({}, wrong):
            self.record("stranger", c.get(f"/api/v1/jobs/{job}", headers=hdr).status_code)
            with c.stream("GET", f"/api/v1/jobs/{job}/events", headers=hdr) as r:
                self.record("stranger", r.status_code)
            self.record("stranger", c.delete(f"/api/v1/jobs/{job}", headers=hdr).status_code)
        if c.get(f"/api/v1/jobs/{job}", headers=own).json().get("state") == "cancelled":
            self.fail("stranger", "job-cancelled-by-stranger")
        c.delete(f"/api/v1/jobs/{job}", headers=own)
        self.wait_finished(c, job, own)

    def streams(self, c: httpx.Client, rng: random.Random) -> None:
        """STREAMS_PER_CLIENT + 2 event streams on one job at once: the ones past the cap get 429."""
        sub = self.submit_async(c, self.body(rng, "balanced"))
        if sub is None:
            return self.fail("streams", "submit-refused")
        job, own = sub
        with contextlib.ExitStack() as open_streams:
            for _ in range(STREAMS_PER_CLIENT + 2):
                r = open_streams.enter_context(c.stream("GET", f"/api/v1/jobs/{job}/events", headers=own))
                self.record("streams", r.status_code)
        c.delete(f"/api/v1/jobs/{job}", headers=own)
        self.wait_finished(c, job, own)

    def edge(self, c: httpx.Client, rng: random.Random, kind: str) -> None:
        port = httpx.URL(self.url).port
        if kind == "forged_host":  # DNS rebinding: a page of attacker.example resolving to 127.0.0.1
            path = rng.choice(["/", "/api/v1/health", "/api/v1/admin/models",
                               "/_nicegui_ws/socket.io/?EIO=4&transport=polling"])
            r = c.get(path, headers={"host": f"attacker.example:{port}"})
        elif kind == "cross_origin_poll":
            r = c.get("/_nicegui_ws/socket.io/?EIO=4&transport=polling",
                      headers={"origin": rng.choice(["http://evil.example", f"http://127.0.0.1:{port + 1}"])})
        elif kind == "admin_non_ascii":
            token = rng.choice(["tökén".encode("utf-8"), b"\xff\xfe", "é".encode("utf-8")])
            r = rng.choice([lambda: c.get("/api/v1/admin/models", headers={"x-admin-token": token}),
                            lambda: c.post("/api/v1/admin/models/reload", headers={"x-admin-token": token}),
                            lambda: c.post("/api/v1/admin/clear-cache", headers={"x-admin-token": token})])()
        else:  # chunked_oversize: no Content-Length, so only a streaming cap can stop it
            def chunks():
                for _ in range(CHUNKED_BYTES // 16384):
                    yield b"x" * 16384

            r = c.post("/api/v1/explain", content=chunks(), headers={"content-type": "application/json"})
        self.record(kind, r.status_code, r.text)

    def abandon(self, c: httpx.Client, rng: random.Random) -> None:
        """A sync balanced explain whose client hangs up after ABANDON_AFTER_S, sent while nothing
        else runs; then the time until the worker is idle again."""
        with self.gate.exclusive():
            if self.wait_idle(c, poll_s=0.2) is None:
                return self.fail("abandon", "server-not-idle-before")
            deadline = time.monotonic() + 120
            while True:
                timeout = httpx.Timeout(30.0, read=ABANDON_AFTER_S)
                try:
                    with httpx.Client(base_url=self.url, timeout=timeout) as short:
                        r = short.post("/api/v1/explain", json=self.body(rng, "balanced"))
                except httpx.ReadTimeout:
                    r = None  # the client is gone: its connection is closed on leaving the block
                t_closed = time.monotonic()
                if r is None:
                    self.record("abandon", "timeout")
                    busy = self.wait_idle(c)
                    if busy is None:
                        return self.fail("abandon", f"worker-busy-over-{IDLE_TIMEOUT_S:.0f}s")
                    with self._lock:
                        self.busy_after_abandon.append(round(busy, 3))
                    return None
                self.record("abandon", r.status_code, r.text)
                if r.status_code not in (429, 503) or time.monotonic() > deadline:
                    return None  # answered within the time (no abandon to measure)
                time.sleep(max(0.0, min(5.0, float(r.headers.get("retry-after", 1))) - (time.monotonic() - t_closed)))

    # -- a worker ------------------------------------------------------------------------------
    def traffic(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.url, timeout=300) as c:
            while (kind := self.next_kind(rng)) is not None:
                try:
                    if kind == "abandon":
                        self.abandon(c, rng)
                        continue
                    r = None
                    with self.gate.shared():
                        if kind == "stranger":
                            self.stranger(c, rng)
                        elif kind == "streams":
                            self.streams(c, rng)
                        elif kind in ("forged_host", "cross_origin_poll", "admin_non_ascii", "chunked_oversize"):
                            self.edge(c, rng, kind)
                        else:
                            r = self.ordinary(c, rng, kind)
                    if r is not None and r.status_code in (429, 503):  # back off outside the gate
                        time.sleep(min(5.0, float(r.headers.get("retry-after", 1))))
                except httpx.HTTPError as err:
                    self.fail(kind, f"transport-error {type(err).__name__}")


def rss_of_server(client: httpx.Client, pid: int | None = None) -> float | None:
    """The server's resident memory: its process (and children) by pid, else its /metrics gauge."""
    if pid is not None:
        try:
            import psutil

            proc = psutil.Process(pid)
            return float(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
        except Exception:  # noqa: BLE001 - gone, or no psutil: fall back to the server's own gauge
            pass
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("heta_process_rss_bytes"):
            return float(line.split()[-1])
    return None


def soak(url: str, duration: float, workers: int, seed: int = 0, sample_every: float = 60.0,
         server_pid: int | None = None, desktop: bool = True, busy_poll_s: float = 1.0) -> dict:
    t_start = time.monotonic()
    s = Soak(url, t_start + duration, desktop=desktop)
    rss_series: list[tuple[float, float | None]] = []
    busy = Counter()  # /health polls: worker busy (a job running) or idle
    with httpx.Client(base_url=url, timeout=300) as c:
        rss_start = rss_of_server(c, server_pid)
        threads = [threading.Thread(target=s.traffic, args=(seed + i,)) for i in range(workers)]
        for t in threads:
            t.start()
        next_rss = time.monotonic()
        while any(t.is_alive() for t in threads):
            now = time.monotonic()
            if now >= next_rss:  # the server's RSS over time: growth shows as a slope
                rss_series.append((round(now - t_start, 1), rss_of_server(c, server_pid)))
                next_rss = now + sample_every
            try:
                h = c.get("/api/v1/health").json()
                busy["busy" if h.get("running", 0) else "idle"] += 1
            except (httpx.HTTPError, ValueError):
                busy["error"] += 1
            time.sleep(busy_poll_s)
        rss_end = rss_of_server(c, server_pid)
        healthy = c.get("/api/v1/health").status_code == 200
    half = [(t, r) for t, r in rss_series if r is not None and t >= duration / 2]
    slope = None
    if len(half) >= 3:  # MiB per hour over the second half (after warm-up)
        import numpy as np

        ts, rs = np.array(half, float).T
        slope = float(np.polyfit(ts / 3600, rs / 2**20, 1)[0])
    polls = busy["busy"] + busy["idle"]
    baa = s.busy_after_abandon
    return {"duration_s": duration, "workers": workers, "outcomes": dict(s.outcomes),
            "by_kind": {k: dict(v) for k, v in sorted(s.by_kind.items())},
            "expected": {k: sorted(map(str, v[1])) for k, v in s.kinds.items()},
            "latency": {q: {"n": len(v), "p50_s": pct(v, 50), "p95_s": pct(v, 95)} for q, v in s.latency.items()},
            "rss_source": "psutil" if server_pid is not None else "/metrics",
            "rss_start_bytes": rss_start, "rss_end_bytes": rss_end, "rss_series": rss_series,
            "rss_peak_bytes": max((r for _, r in rss_series if r is not None), default=None),
            "rss_slope_second_half_mib_per_h": slope,
            "worker_busy_fraction": (busy["busy"] / polls) if polls else None, "busy_polls": dict(busy),
            "busy_after_abandon_s": {"n": len(baa), "max": max(baa) if baa else None,
                                     "p95": pct(baa, 95) if baa else None, "p50": pct(baa, 50) if baa else None,
                                     "samples": baa},
            "unexpected": s.unexpected, "healthy_after": healthy}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="a running server (default: start one on a free loopback port)")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid, for RSS by psutil")
    ap.add_argument("--any-host", action="store_true",
                    help="with --url: the server is not in desktop mode (a forged Host is served, not 400)")
    ap.add_argument("--duration", type=float, default=120)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--sample-every", type=float, default=60.0, help="seconds between RSS samples")
    ap.add_argument("--name", default="soak")
    args = ap.parse_args(argv)
    srv = None
    url, pid = args.url, args.pid
    if url is None:
        from tests.conftest import LiveServer
        import tempfile

        srv = LiveServer(tempfile.mkdtemp(), "--rate-limit", "120", "--max-queued", "4", "--client-jobs", "4")
        url, pid = srv.url, srv.proc.pid
    try:
        res = soak(url, args.duration, args.workers, sample_every=args.sample_every, server_pid=pid,
                   desktop=not args.any_host)
    finally:
        if srv is not None:
            srv.stop()
    rows = [[k, v] for k, v in sorted(res["outcomes"].items())]
    rows += [[f"latency {q} p50 / p95 s (n={v['n']})", f"{v['p50_s']:.2f} / {v['p95_s']:.2f}"]
             for q, v in res["latency"].items()]
    mib = lambda b: "-" if b is None else f"{b / 2**20:.0f}"  # noqa: E731
    baa = res["busy_after_abandon_s"]
    rows += [["RSS start / peak / end MiB (" + res["rss_source"] + ")",
              f"{mib(res['rss_start_bytes'])} / {mib(res['rss_peak_bytes'])} / {mib(res['rss_end_bytes'])}"],
             ["RSS slope, second half (MiB/h)", "-" if res["rss_slope_second_half_mib_per_h"] is None
              else f"{res['rss_slope_second_half_mib_per_h']:+.1f}"],
             ["worker busy (share of 1 s polls)", "-" if res["worker_busy_fraction"] is None
              else f"{res['worker_busy_fraction']:.0%}"],
             [f"worker busy after an abandoned request, max / p95 s (n={baa['n']})",
              "-" if not baa["n"] else f"{baa['max']:.2f} / {baa['p95']:.2f}"],
             ["unexpected responses", len(res["unexpected"])], ["healthy after", res["healthy_after"]]]
    cmd = "python -m experiments.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    write_results(args.name, res, ["outcome", "count / value"], rows, cmd.strip(),
                  notes="Deliberate errors: 400/422 (invalid), 413/422 (overlimit: 70 kB body, 4,500-word prompt, "
                        "10,000 new tokens), 429 (rate limit), 503 (queue full), 504 (time limit). Attacks "
                        "(issue #18): stranger = another client's job read, streamed and cancelled with no or a "
                        "wrong X-Job-Token (404); forged_host = a rebinding Host (400, desktop mode); "
                        "cross_origin_poll = socket.io long-poll from another origin (403); admin_non_ascii "
                        "(403); chunked_oversize = a 512 KiB chunked body (413); streams = 6 event streams at "
                        "once, past the per-client cap of 4 (429). abandon = a sync balanced explain whose "
                        f"client hangs up after {ABANDON_AFTER_S} s ('timeout'), run alone; 'busy after' = time "
                        "from the hang-up until /api/v1/health shows nothing running or queued. 'unexpected' = "
                        "any other status, a 5xx other than 503/504, or a transport error.")
    sys.exit(0 if not res["unexpected"] and res["healthy_after"] else 1)


if __name__ == "__main__":
    main()
