"""The per-client limits (gui/serving/ratelimit.py) with an injected clock: burst, refill, Retry-After,
the X-Forwarded-For trust rule, and the concurrent-job cap; then the same rules through the
API in process (no model: a never-loaded state answers 409 after the limiter let a request
through, and a stub model lets async jobs queue behind a job that holds the only worker).

Every test builds its own limiter and clock: no test sees another's tokens."""
from __future__ import annotations

import math
import threading

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gui.serving import register_api
from gui.serving.ratelimit import Limits, RateLimiter, client_id
from gui.state import AppState
from heta_lite.errors import ClientLimited
from heta_lite.jobs import JobQueue

LOOPBACK = ("127.0.0.1", "::1")


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def _limiter(rpm: float, burst: int, jobs: int = 2, trusted=LOOPBACK):
    clock = FakeClock()
    return RateLimiter(Limits(requests_per_minute=rpm, burst=burst, concurrent_jobs=jobs, trusted_proxies=trusted),
                       clock=clock), clock


# -- token bucket ---------------------------------------------------------------------------------
@pytest.mark.parametrize("burst", [1, 3, 10])
def test_a_new_client_gets_exactly_burst_requests_at_once(burst):
    lim, _ = _limiter(rpm=60, burst=burst)  # one token per second
    assert [lim.take("a") for _ in range(burst)] == [0.0] * burst
    assert lim.take("a") == pytest.approx(1.0)  # empty: one token's refill time


def test_tokens_come_back_at_the_configured_rate():
    lim, clock = _limiter(rpm=30, burst=2)  # 0.5 tokens per second: one every 2 s
    assert lim.take("a") == 0.0 and lim.take("a") == 0.0
    assert lim.take("a") == pytest.approx(2.0)
    clock.advance(0.5)
    assert lim.take("a") == pytest.approx(1.5)  # a quarter token back: 1.5 s to go
    clock.advance(1.25)  # (binary-exact steps: the arrival below is exact, not within rounding)
    assert lim.take("a") == pytest.approx(0.25)  # still just short
    clock.advance(0.25)
    assert lim.take("a") == 0.0  # the token arrived exactly when promised
    assert lim.take("a") == pytest.approx(2.0)
    clock.advance(4.0)  # two tokens' worth
    assert lim.take("a") == 0.0 and lim.take("a") == 0.0 and lim.take("a") > 0


def test_refill_never_goes_past_the_burst():
    lim, clock = _limiter(rpm=60, burst=3)
    for _ in range(3):
        lim.take("a")
    clock.advance(3600.0)  # an idle hour refills to the burst, not to 3600 tokens
    assert [lim.take("a") for _ in range(4)][:3] == [0.0] * 3
    assert lim.take("a") > 0


def test_refused_requests_use_no_tokens():
    lim, clock = _limiter(rpm=60, burst=1)
    assert lim.take("a") == 0.0
    waits = [lim.take("a") for _ in range(5)]  # hammering while limited ...
    assert waits == [pytest.approx(1.0)] * 5  # ... does not push the next token further away
    clock.advance(1.0)
    assert lim.take("a") == 0.0


def test_clients_have_separate_buckets():
    lim, _ = _limiter(rpm=60, burst=2)
    assert lim.take("a") == 0.0 and lim.take("a") == 0.0 and lim.take("a") > 0
    assert lim.take("b") == 0.0 and lim.take("b") == 0.0  # b's bucket is untouched by a


def test_zero_rate_means_only_the_burst_then_a_minute():
    lim, clock = _limiter(rpm=0, burst=2)
    assert lim.take("a") == 0.0 and lim.take("a") == 0.0
    clock.advance(1e6)
    assert lim.take("a") == 60.0


def test_the_default_clock_is_monotonic():
    import time

    assert RateLimiter(Limits()).clock is time.monotonic


# -- who is the client ----------------------------------------------------------------------------
@pytest.mark.parametrize("peer, xff, expected", [
    ("198.51.100.7", None, "198.51.100.7"),                       # no header: the socket address
    ("198.51.100.7", "203.0.113.5", "198.51.100.7"),              # untrusted peer: its header is ignored
    ("127.0.0.1", "203.0.113.5", "203.0.113.5"),                  # trusted proxy: its header is believed
    ("::1", "2001:db8::1", "2001:db8::1"),                        # IPv6 proxy and client
    ("127.0.0.1", " 2001:DB8:0:0::1 ", "2001:db8::1"),            # normalised, so one client is one key
    ("127.0.0.1", "203.0.113.66, 203.0.113.5", "203.0.113.5"),    # appended by the proxy: the rightmost is real
    ("127.0.0.1", "203.0.113.66, 203.0.113.5, 127.0.0.1", "203.0.113.5"),  # a trusted hop is skipped
    ("127.0.0.1", "127.0.0.1", "127.0.0.1"),                      # all trusted: the leftmost
    ("127.0.0.1", "not-an-ip", "127.0.0.1"),                      # garbage: the proxy itself
    ("127.0.0.1", "203.0.113.5, garbage", "127.0.0.1"),           # garbage from the proxy's side: stop there
    ("127.0.0.1", "", "127.0.0.1"),
    (None, "203.0.113.5", "unknown"),                             # no peer: never trusted
    ("testclient", "203.0.113.5", "testclient"),                  # a peer that is no address: never trusted
])
def test_client_id_believes_forwarded_for_only_from_trusted_proxies(peer, xff, expected):
    assert client_id(peer, xff, LOOPBACK) == expected


def test_trusted_proxies_may_be_networks_and_bad_entries_are_ignored():
    trusted = ("not a network", "10.0.0.0/8")
    assert client_id("10.1.2.3", "203.0.113.5", trusted) == "203.0.113.5"
    assert client_id("11.1.2.3", "203.0.113.5", trusted) == "11.1.2.3"
    assert client_id("10.1.2.3", "203.0.113.5", ()) == "10.1.2.3"  # nothing trusted: never believed


# -- concurrent jobs per client -------------------------------------------------------------------
def test_concurrent_job_cap_counts_only_unfinished_jobs_per_client():
    lim, _ = _limiter(rpm=60, burst=10, jobs=2)
    alive = {"j1", "j2", "j3", "k1"}

    def is_alive(j):
        return j in alive

    assert lim.start_job("a", "j1", is_alive) and lim.start_job("a", "j2", is_alive)
    assert not lim.start_job("a", "j3", is_alive) and lim.active_jobs("a", is_alive) == 2
    assert lim.start_job("b", "k1", is_alive)  # another client has its own cap
    alive.discard("j1")  # j1 finished
    assert lim.active_jobs("a", is_alive) == 1
    assert lim.start_job("a", "j3", is_alive) and lim.active_jobs("a", is_alive) == 2
    assert not lim.start_job("a", "j4", lambda j: True)


def test_concurrent_job_cap_holds_under_concurrent_starts():
    lim, _ = _limiter(rpm=60, burst=10, jobs=3)
    barrier = threading.Barrier(8)
    won = []

    def start(i):
        barrier.wait(10)
        if lim.start_job("a", f"j{i}", lambda j: True):
            won.append(i)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(won) == 3 and lim.active_jobs("a", lambda j: True) == 3


# -- through the API, in process ------------------------------------------------------------------
BODY = {"prompt": "Hello there", "target": {"position": 1, "chat": False}}


@pytest.fixture
def unloaded():
    st = AppState(model_name="smollm2-135m", queue=JobQueue())  # never loaded: explain answers 409
    yield st
    st.queue.shutdown()


def _app(state, limiter) -> FastAPI:
    app = FastAPI()
    register_api(app, state, limiter=limiter)
    return app


def _post(c: TestClient, xff: str | None = None, body=BODY):
    return c.post("/api/v1/explain", json=body, headers={"x-forwarded-for": xff} if xff else {})


def test_retry_after_is_never_early_and_a_retry_then_succeeds(unloaded):
    lim, clock = _limiter(rpm=6, burst=2)  # one token per 10 s
    with TestClient(_app(unloaded, lim), client=("198.51.100.7", 4000)) as c:
        assert [_post(c).status_code for _ in range(2)] == [409, 409]  # past the limiter
        r = _post(c)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        retry = int(r.headers["retry-after"])
        assert retry == 10 and f"try again in {retry} s" in r.json()["error"]["message"]  # the wait, not 1 s more
        clock.advance(9.5)
        r = _post(c)
        assert r.status_code == 429 and int(r.headers["retry-after"]) == math.ceil(0.5)
        clock.advance(0.5)
        assert _post(c).status_code == 409  # the promised token arrived
        assert _post(c).status_code == 429


def test_forwarded_for_separates_clients_only_behind_a_trusted_proxy(unloaded):
    lim, _ = _limiter(rpm=6, burst=1)
    with TestClient(_app(unloaded, lim), client=("127.0.0.1", 4000)) as proxy:  # loopback: trusted (Caddy)
        assert _post(proxy, "203.0.113.1").status_code == 409
        assert _post(proxy, "203.0.113.1").status_code == 429
        assert _post(proxy, "203.0.113.2").status_code == 409  # another client behind the proxy
        # a client that prepends its own header through an appending proxy is still itself
        assert _post(proxy, "203.0.113.99, 203.0.113.1").status_code == 429
    with TestClient(_app(unloaded, lim), client=("198.51.100.7", 4000)) as direct:  # untrusted
        assert _post(direct, "203.0.113.3").status_code == 409
        assert _post(direct, "203.0.113.4").status_code == 429  # rotating the header does not help


class _StubModel:
    """Enough of a loaded model for the API to accept and queue a request (never run here)."""

    quantization = "none"
    name = "stub"


def test_concurrent_job_cap_through_the_api():
    state = AppState(model_name="smollm2-135m", queue=JobQueue(concurrency=1, max_queued=16))
    state.lm = _StubModel()
    started, gate = threading.Event(), threading.Event()

    def hold(control):
        started.set()
        gate.wait(30)

    blocker = state.queue.submit(hold)  # holds the only worker: API jobs stay queued (alive)
    assert started.wait(10)
    lim, _ = _limiter(rpm=600, burst=50, jobs=2)
    body = {**BODY, "async": True}
    try:
        with TestClient(_app(state, lim), client=("127.0.0.1", 4000)) as c:
            a = [_post(c, "203.0.113.1", body) for _ in range(2)]
            assert [r.status_code for r in a] == [202, 202]
            third = _post(c, "203.0.113.1", body)
            assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_jobs"
            assert int(third.headers["retry-after"]) >= 1
            assert _post(c, "203.0.113.2", body).status_code == 202  # another client's cap is its own
            first = a[0].json()
            assert c.delete(f"/api/v1/jobs/{first['job_id']}",
                            headers={"x-job-token": first["job_token"]}).status_code == 200  # one finishes ...
            assert _post(c, "203.0.113.1", body).status_code == 202  # ... and frees a place
            assert _post(c, "203.0.113.1", body).status_code == 429
    finally:
        gate.set()
        state.queue.shutdown()
        state.queue.wait(blocker.id, 10)


# -- bounded memory and IPv6 (issue #18 item 6) ---------------------------------------------------
def test_buckets_of_idle_clients_are_pruned():
    """Before: one bucket per address ever seen, forever. 10,000 clients, one request each; once
    their buckets have refilled (burst / rate = 10 s here) they are dropped at the next prune."""
    lim, clock = _limiter(rpm=60, burst=10)
    for i in range(10_000):
        assert lim.take(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}") == 0.0
    assert lim.tracked_clients == 10_000
    clock.advance(lim.prune_every_s)  # every bucket is full again: as good as new
    assert lim.take("192.0.2.1") == 0.0  # a request triggers the periodic prune
    assert lim.tracked_clients == 1


def test_a_pruned_client_is_not_better_off_than_one_that_was_kept():
    lim, clock = _limiter(rpm=6, burst=2)  # a token per 10 s
    assert lim.take("a") == 0.0 and lim.take("a") == 0.0
    clock.advance(lim.prune_every_s / 2)  # 30 s: refilled to the burst, so pruned ...
    lim.prune()
    assert lim.tracked_clients == 0
    assert lim.take("a") == 0.0 and lim.take("a") == 0.0 and lim.take("a") > 0  # ... and a new one is the same
    lim2, clock2 = _limiter(rpm=0.6, burst=2)  # a token per 100 s: still draining after 30 s
    assert lim2.take("a") == 0.0 and lim2.take("a") == 0.0
    clock2.advance(30.0)
    lim2.prune()
    assert lim2.tracked_clients == 1 and lim2.take("a") > 0  # a drained bucket is kept


def test_memory_is_bounded_even_within_the_refill_window():
    """A flood of new addresses faster than buckets refill: at most max_clients are kept, the least
    recently used go first."""
    lim = RateLimiter(Limits(requests_per_minute=1, burst=5), clock=FakeClock(), max_clients=1000)
    for i in range(5000):
        lim.take(f"2001:db8:{i:x}::1")
    assert lim.tracked_clients <= 1000


def test_finished_clients_leave_the_job_table():
    lim, clock = _limiter(rpm=60, burst=10, jobs=2)
    alive = set()
    for i in range(500):
        alive.add(f"j{i}")
        assert lim.start_job(f"198.51.100.{i % 250}", f"j{i}", lambda j: j in alive)
    alive.clear()  # every job finished
    clock.advance(lim.prune_every_s)
    lim.take("192.0.2.1")
    assert lim.tracked_clients == 1  # only the new bucket


@pytest.mark.parametrize("client, key", [
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("192.0.2.7", "192.0.2.7"),
    ("testclient", "testclient"),
])
def test_bucket_keys(client, key):
    from gui.serving.ratelimit import bucket_key

    assert bucket_key(client) == key


def test_ipv6_clients_share_a_bucket_per_64():
    """Before: every IPv6 address had its own bucket, and one host owns a whole /64 (2^64
    addresses): rotating the interface id gave a fresh burst each time."""
    lim, _ = _limiter(rpm=6, burst=2)
    assert lim.take("2001:db8:1:2::1") == 0.0 and lim.take("2001:db8:1:2::2") == 0.0
    assert lim.take("2001:db8:1:2:dead:beef:0:3") > 0  # same /64: same (empty) bucket
    assert lim.take("2001:db8:1:3::1") == 0.0  # the next /64 is someone else
    assert lim.start_job("2001:db8:9:9::1", "j1", lambda j: True)
    assert lim.start_job("2001:db8:9:9::2", "j2", lambda j: True)
    assert not lim.start_job("2001:db8:9:9::3", "j3", lambda j: True)  # the job cap is per /64 too


def test_retry_after_rounds_the_wait_up_and_float_noise_does_not_add_a_second():
    assert [ClientLimited.rate(w).retry_after_s for w in (0.0, 0.2, 1.0, 8.57, 10.0, 10.0 + 2e-15, 10.01)] == \
        [1, 1, 1, 9, 10, 10, 11]
    assert "try again in 9 s" in str(ClientLimited.rate(8.57)) and ClientLimited.rate(3).code == "rate_limited"
    jobs = ClientLimited.jobs(2)
    assert jobs.code == "too_many_jobs" and "already have 2 jobs" in str(jobs)


def test_a_client_that_waits_exactly_as_told_gets_in_at_an_awkward_rate():
    """rpm 7: one token per 8.571... s, so refill arithmetic lands near, not on, whole seconds. A
    client that retries after exactly Retry-After seconds gets in every time; one second less does not."""
    lim, clock = _limiter(rpm=7, burst=1)
    assert lim.take("203.0.113.9") == 0
    retries = []
    for _ in range(8):
        retry = ClientLimited.rate(lim.take("203.0.113.9")).retry_after_s
        retries.append(retry)
        clock.advance(retry - 1)
        assert lim.take("203.0.113.9") > 0  # a second early is still early
        clock.advance(1)
        assert lim.take("203.0.113.9") == 0
    assert retries[0] == 9 and set(retries) <= {8, 9}
