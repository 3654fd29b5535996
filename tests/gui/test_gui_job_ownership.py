"""The page's jobs: ownership through the tab's storage, not the URL (issue #18 item 2), and the
same per-client limits as the API (item 7). No model is needed: jobs are held behind a gate.

Attacks reproduced: a `/?job=<id>` link opened by someone else re-attached to the job and showed
its result; one page filled the whole queue by pressing Generate again and again, while API users
from the same address were held to their limits."""
from __future__ import annotations

import threading

import pytest
from nicegui.testing.user_simulation import user_simulation

from gui.page import build_page
from gui.page.runner import remember_token
from gui.serving.ratelimit import Limits, RateLimiter, client_id
from gui.serving.routes import user_router
from gui.serving.telemetry import Metrics
from gui.state import AppState
from heta_lite.jobs import FINISHED, JobQueue
from tests.gui.helpers import until

WAIT = 10.0


class _StubLM:
    """Enough of a loaded model for the page to accept and queue a Generate (never run here)."""

    name, quantization, dtype, device = "stub", "none", "float32", "cpu"
    tokenizer = type("Tok", (), {"chat_template": None})()

    def describe(self) -> dict:
        return {"name": self.name}


@pytest.fixture
def held():
    """An app state whose only worker is held by a gated job: page jobs stay queued."""
    state = AppState(model_name="stub", queue=JobQueue(concurrency=1, max_queued=16))
    gate = threading.Event()
    blocker = state.queue.submit(lambda control: gate.wait(WAIT), kind="blocker")
    try:
        yield state, gate, blocker
    finally:
        gate.set()
        state.queue.shutdown(wait_s=WAIT)


def _root(state):
    def root(job: str | None = None) -> None:  # like gui/app.py's page
        build_page(state, job_id=job)

    return root


async def test_a_job_link_reattaches_only_in_the_tab_that_holds_its_token(held):
    state, gate, _ = held
    job = state.queue.submit(lambda control: gate.wait(WAIT), kind="explain", surface="gui")
    async with user_simulation(root=_root(state)) as owner:
        await owner.open("/")
        with owner:
            assert remember_token(job)  # what the page's Explain does (runner.submit)
        await owner.open(f"/?job={job.id}")  # a reload of this tab
        await owner.should_see("Waiting in the queue", retries=50)  # re-attached to its job
    async with user_simulation(root=_root(state)) as stranger:  # someone given the link
        await stranger.open(f"/?job={job.id}")
        await stranger.should_see("no longer known to the server")
        await stranger.should_not_see("Waiting in the queue")
        await stranger.should_not_see("Explaining")


async def test_an_api_job_opened_on_the_page_is_refused_clearly(held):
    state, gate, _ = held
    job = state.queue.submit(lambda control: {"report": "a dict"}, kind="explain", surface="api")
    async with user_simulation(root=_root(state)) as user:
        await user.open("/")
        with user:
            remember_token(job)  # even with its token: the page can't show an API report
        await user.open(f"/?job={job.id}")
        await user.should_see("not started by this page's Explain")
        await user.should_not_see("Waiting in the queue")


def _register_limits(state: AppState, limits: Limits) -> RateLimiter:
    """What register_api does for the page: the API's limiter and client naming on the state."""
    limiter = RateLimiter(limits, clock=lambda: 0.0)  # a frozen clock: no token comes back during the test
    user_router(state, limiter, Metrics(),
                lambda request: client_id(request.client.host if request.client else None,
                                          request.headers.get("x-forwarded-for"), limits.trusted_proxies))
    return limiter


def _alive_page_jobs(state: AppState) -> list:
    return [j for j in state.queue._jobs.values() if j.surface == "gui" and j.state not in FINISHED]


async def test_one_page_cannot_fill_the_queue(held):
    state, gate, _ = held
    state.lm = _StubLM()
    _register_limits(state, Limits(requests_per_minute=1, burst=4, concurrent_jobs=2))
    async with user_simulation(root=_root(state)) as user:
        await user.open("/")
        user.find(marker="prompt").type("Hello there")
        for _ in range(4):
            user.find(marker="generate").click()
        assert len(_alive_page_jobs(state)) == 1  # each press replaced (cancelled) the page's previous job
        user.find(marker="generate").click()  # past the client's burst: refused like an API request
        await user.should_see("Too many requests")
        assert state.queue.depth == 1


async def test_a_closed_page_cancels_the_jobs_nobody_can_see_but_keeps_its_explanation(held):
    """Found by the GUI bad-input corpus: a closed page's time estimate (minutes for a long prompt on
    a busy CPU) kept the one worker busy, and the next page's Generate waited behind it. Now a page
    that is gone cancels its side jobs and its other main jobs; an explanation stays, because a
    reload of its ?job= link re-attaches to it."""
    from gui.page.runner import JobRunner

    state, gate, _ = held
    state.lm = _StubLM()

    def page_runner():
        (runner,) = [o for o in _objects_of(JobRunner) if o.state is state and not o.abandoned]
        return runner

    async with user_simulation(root=_root(state)) as user:
        await user.open("/")
        user.find(marker="prompt").type("Hello there")
        user.find(marker="generate").click()  # the page's main job, of kind 'generate' (held behind the gate)
        (generate,) = _alive_page_jobs(state)
        runner = page_runner()
        runner.submit_side("estimate", lambda control: gate.wait(WAIT), "estimate", lambda r: None)
        estimate = runner.side["estimate"][0]
        user.client.delete()  # what NiceGUI does when a closed page does not reconnect in time
        await until(lambda: state.queue.get(estimate.id).state == "cancelled", WAIT)  # its handler may be a task
    assert state.queue.get(generate.id).state == "cancelled"
    async with user_simulation(root=_root(state)) as user:  # a page whose main job is an explanation
        await user.open("/")
        runner = page_runner()
        explain = runner._submit(lambda control: gate.wait(WAIT), "explain")
        runner.attach(explain, lambda r: None)
        user.client.delete()
        await until(lambda: runner.abandoned, WAIT)
    assert state.queue.get(explain.id).state not in FINISHED  # still there for a reload to re-attach


def _objects_of(cls) -> list:
    import gc

    return [o for o in gc.get_objects() if isinstance(o, cls)]


async def test_page_and_api_jobs_share_the_clients_job_cap(held):
    state, gate, _ = held
    state.lm = _StubLM()
    limiter = _register_limits(state, Limits(requests_per_minute=600, burst=100, concurrent_jobs=1))
    async with user_simulation(root=_root(state)) as user:
        await user.open("/")
        user.find(marker="prompt").type("Hello there")
        user.find(marker="generate").click()
        (page_job,) = _alive_page_jobs(state)
        api_job = state.queue.submit(lambda control: None, kind="explain", surface="api")  # same client, by API
        alive = lambda j: state.queue.get(j) is not None and state.queue.get(j).state not in FINISHED  # noqa: E731
        assert not limiter.start_job(page_job.owner, api_job.id, alive)  # the page's job counts for the API ...
        state.queue.cancel(page_job.id)
        assert limiter.start_job(page_job.owner, api_job.id, alive)
        user.find(marker="generate").click()  # ... and the API's for the page
        await user.should_see("You already have 1 jobs running or queued")
        assert _alive_page_jobs(state) == []


async def test_a_page_explanation_opens_through_the_api_and_other_page_jobs_are_refused(tiny_folder):
    """Issue #18 item 12, page -> API: the page's job holds an Explanation (not a report dict); with
    its token, GET /api/v1/jobs/{id} answers the same report shape as an API job. The page's other
    jobs (a Generate's context) are refused with a clear 409. (API -> page: the test above.)"""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from gui.page.runner import saved_token
    from gui.serving import register_api
    from heta_lite.report import validate_report

    state = AppState(model_name=tiny_folder, default_quality="fast", queue=JobQueue(), device="cpu")
    state.start_loading()
    state.wait_loaded(120)
    assert state.ready, state.load_error
    api = FastAPI()
    register_api(api, state, Limits(requests_per_minute=6000, burst=1000, concurrent_jobs=100))
    try:
        async with user_simulation(root=_root(state)) as user:
            await user.open("/")
            user.find(marker="prompt").type("The capital of France is")
            user.find(marker="generate").click()
            await user.should_see("Target:", retries=600)
            user.find(marker="explain").click()
            await user.should_see("Why '", retries=1200)
            (exp_job,) = [j for j in state.queue._jobs.values() if j.surface == "gui" and j.kind == "explain"]
            (gen_job,) = [j for j in state.queue._jobs.values() if j.surface == "gui" and j.kind == "generate"]
            with user:
                token = saved_token(exp_job.id)  # the page kept it in this tab's storage
            await user.open(f"/?job={exp_job.id}")  # a reload of this tab shows the job's result again
            await user.should_see("Why '", retries=600)
        assert token == exp_job.token
        with TestClient(api) as c:
            assert c.get(f"/api/v1/jobs/{exp_job.id}").status_code == 404  # the id alone: nothing
            r = c.get(f"/api/v1/jobs/{exp_job.id}", headers={"x-job-token": token})
            assert r.status_code == 200 and r.json()["state"] == "done", r.text
            validate_report(r.json()["report"])
            assert r.json()["report"]["target"]["display"]
            g = c.get(f"/api/v1/jobs/{gen_job.id}", headers={"x-job-token": gen_job.token})
            assert g.status_code == 409 and g.json()["error"]["code"] == "not_an_api_job"
            assert "generate" in g.json()["error"]["message"]
    finally:
        state.queue.shutdown(wait_s=300)


async def test_the_pages_automatic_follow_ups_never_refuse_the_users_own_job(held):
    """Found by the browser test: after Generate and a token pick, the page's time estimate (an old
    one still being cancelled and its replacement) took both of the client's 2 job slots, and the
    user's Explain was refused with 'You already have 2 jobs running or queued'. Automatic follow-ups
    are outside the client's cap (the page keeps one per kind); the user's own jobs are not."""
    from gui.page.runner import JobRunner
    from gui.page.state import PageState

    state, gate, _ = held
    limiter = _register_limits(state, Limits(requests_per_minute=600, burst=100, concurrent_jobs=2))
    runners = []

    def root():
        runner = JobRunner(state, PageState(), show_error=lambda msg: None)
        runner.build_progress()
        runners.append(runner)

    async with user_simulation(root=root) as user:
        await user.open("/")
        r = runners[-1]
        r.client = "10.1.2.3"
        for key in ("estimate", "lens", "estimate"):  # automatic: each replaces the last of its kind
            r.submit_side(key, lambda control: gate.wait(WAIT), "estimate", lambda res: None)
        r.submit(lambda control: gate.wait(WAIT), "explain", lambda res: None)  # the user's own: accepted
        r.submit_side("attention", lambda control: gate.wait(WAIT), "explore", lambda res: None, rated=True)
        alive = lambda j: state.queue.get(j) is not None and state.queue.get(j).state not in FINISHED  # noqa: E731
        assert limiter.active_jobs("10.1.2.3", alive) == 2  # only the user's own two count
        with pytest.raises(Exception, match="already have 2 jobs"):
            r.submit_side("heads", lambda control: gate.wait(WAIT), "explore", lambda res: None, rated=True)
