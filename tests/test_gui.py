"""The app through NiceGUI's simulated user (no browser): the whole workflow on the offline
model, bad inputs, queue position with two jobs, cancel."""
import asyncio
import time

import pytest
from nicegui import ui
from nicegui.testing.user_simulation import user_simulation

from gui.page import build_page
from gui.state import AppState
from heta_lite.jobs import JobQueue

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state(smollm):
    st = AppState(model_name="smollm2-135m", default_quality="fast", queue=JobQueue())
    st.lm = smollm
    return st


async def _until(cond, timeout=120.0):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError
        await asyncio.sleep(0.1)


def _marked(user, marker):
    return user.find(marker=marker).elements


async def test_full_workflow(state):
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        await user.should_see("why did the model predict this token?")
        user.find(marker="prompt").type("The capital of France is")
        user.find("Generate").click()
        await user.should_see("Click a token", retries=200)
        await user.should_see("Target:", retries=200)
        await user.should_see("generated token at position")
        await user.should_see("expected here for", retries=300)  # measured per-preset estimate
        user.find("Explain").click()
        await user.should_see("Why '", retries=600)
        html_el = next(iter(user.find(marker="heatmap").elements))
        assert "heta-tok" in html_el.content and "percentile" in html_el.content
        await user.should_see("Most influential tokens")
        user.find("Download JSON report").click()
        await _until(lambda: user.download.http_responses, 10)
        import json

        from heta_lite.report import validate_report

        report = json.loads(user.download.http_responses[-1].content)
        validate_report(report)
        assert report["target"]["mode"] == "generated"


async def test_bad_input_is_answered_inline(state):
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        user.find(marker="prompt").type("   ")
        user.find("Generate").click()
        await user.should_see("The prompt is empty")
        user.find(marker="prompt").clear().type("word " * 700)
        user.find("Generate").click()
        await user.should_see("the limit is 512 tokens", retries=200)


async def test_queue_position_and_cancel(state):
    blocker_started = []

    def blocker(control):
        blocker_started.append(1)
        for i in range(200):
            control.step("blocking", i, 200)
            time.sleep(0.05)

    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        busy = state.queue.submit(blocker, kind="other")
        await _until(lambda: blocker_started, 10)
        user.find(marker="prompt").type("The capital of France is")
        user.find("Generate").click()
        await user.should_see("Waiting in the queue: position 1", retries=50)
        user.find("Cancel").click()
        await user.should_see("Cancelled.", retries=50)
        state.queue.cancel(busy.id)
        await _until(lambda: state.queue.get(busy.id).state == "cancelled", 10)


async def test_reload_reattaches_to_the_job(state):
    from heta_lite.engine import explain
    from heta_lite.settings import HetaSettings
    from heta_lite.targets import TargetSpec

    job = state.queue.submit(lambda control: explain(state.lm, "The sky is", TargetSpec(position=2, chat=False),
                                                     HetaSettings.preset("fast"), control=control), kind="explain")
    async with user_simulation(root=lambda: build_page(state, job_id=job.id)) as user:
        await user.open("/")
        await user.should_see("Why '", retries=600)
    async with user_simulation(root=lambda: build_page(state, job_id="nope")) as user:
        await user.open("/")
        await user.should_see("no longer known")


async def test_compare_two_prompts(state):
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        user.find(marker="compare-a").type("The capital of France is")
        user.find(marker="compare-b").type("No, think again: the capital of France is")
        user.find(marker="compare-btn").click()
        await user.should_see("A predicts", retries=600)
