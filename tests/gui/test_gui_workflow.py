"""The app through NiceGUI's simulated user (no browser): the whole workflow on the offline
model, exploring panels, bad inputs, queue position with two jobs, cancel, reload.

`user_simulation(root=...)` is what NiceGUI's `user` fixture runs underneath; we call it
directly so that each test builds the page around a shared AppState (one model, one queue)
instead of executing run.py (whose argument parsing and model loading are not under test here).
"""
import asyncio
import json
import threading
import time

import pytest
from nicegui import ui
from nicegui.testing.user_simulation import user_simulation

from gui.page import build_page
from gui.state import AppState
from heta_lite.jobs import JobQueue
from tests.gui.helpers import one as _one
from tests.gui.helpers import until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state(smollm):
    st = AppState(model_name="smollm2-135m", default_quality="fast", queue=JobQueue())
    st.lm = smollm
    yield st
    st.queue.shutdown(wait_s=300)  # let a running model job stop before the process may exit


def _blocker(started: threading.Event, steps: int = 400):
    def fn(control):
        started.set()
        for i in range(steps):
            control.step("blocking", i, steps)
            time.sleep(0.05)

    return fn


async def test_full_workflow(state):
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        await user.should_see("why did the model predict this token?")
        await user.should_see("smollm2-135m")  # model and quantization in the header
        await user.should_see("quantization none")
        user.find("The capital of France is").click()  # an example chip (chat template off)
        user.find(marker="generate").click()
        await user.should_see("Click a token", retries=600)
        await user.should_see("generated token at position", retries=600)
        await user.should_see("Expected time here for", retries=900)  # measured per-preset estimate
        user.find(marker="explain").click()
        await user.should_see("Why '␣Paris'?", retries=1800)
        heat = _one(user, "heatmap").content
        assert "heta-tok" in heat and "percentile" in heat and "rank" in heat and "M " in heat
        assert "heta-target" in heat
        strips = _one(user, "strips").content
        assert all(f'heta-strip-name" title="{c}' in strips for c in "MSI")
        await user.should_see("Most influential tokens")
        await user.should_see("What the model considered at this position")
        await user.should_see("Settings: method heta · quality fast")
        await user.should_see("gate last-quarter · frame auto")
        check = _one(user, "check").content  # the faithfulness check, under the heatmap, unasked
        assert "Faithfulness check:" in check and "after deleting the top-" in check
        risk = _one(user, "risk").content  # failure risk with its measured accuracy, and the anomaly flags
        assert "held-out questions" in risk and ("No anomaly flags" in risk or "Unusual run" in risk)
        user.find("Download JSON report").click()
        await until(lambda: user.download.http_responses, 10)
        from heta_lite.report import validate_report

        report = json.loads(user.download.http_responses[-1].content)
        validate_report(report)
        assert report["target"]["mode"] == "generated" and report["target"]["display"] == "␣Paris"
        assert report["failure_risk"]["calibrated"] and 0 <= report["failure_risk"]["p_wrong"] <= 1
        assert isinstance(report["anomalies"]["flags"], list) and report["anomalies"]["calibrated"]
        user.find("Download PNG heatmap").click()
        await until(lambda: len(user.download.http_responses) >= 2, 20)
        assert user.download.http_responses[-1].content[:8] == b"\x89PNG\r\n\x1a\n"
        # exploring panels fill in for the target's position
        await user.should_see("what the model would predict next", retries=900)
        user.find(marker="attn-btn").click()
        await until(lambda: "attention" in _one(user, "attention").content, 60)
        assert "Paris" not in _one(user, "attention").content  # the target itself is not in its context
        await user.should_not_see(marker="heads")  # hidden (no blank space) until computed
        user.find(marker="heads-btn").click()  # head importance: one cell per (layer, head) of SmolLM2 (30 x 9)
        await user.should_see(marker="heads", retries=6000)
        await until(lambda: len((_one(user, "heads").options["series"] or [{}])[0].get("data", [])) == 270, 600)
        user.find("Download JSON report").click()  # the report now carries the head importance too
        await until(lambda: len(user.download.http_responses) >= 3, 10)
        with_heads = json.loads(user.download.http_responses[-1].content)
        validate_report(with_heads)
        assert len(with_heads["head_importance"]["drop"]) == 30 and len(with_heads["head_importance"]["drop"][0]) == 9


async def test_prompt_token_is_teacher_forced(state):
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        user.find("The capital of France is").click()
        user.find(marker="generate").click()
        await user.should_see("Target:", retries=600)
        user.find("␣France").click()  # a prompt token chip
        # its position in the context as the model sees it (frame tokens first: heta_lite/frame.py)
        from heta_lite.engine import make_context
        from heta_lite.settings import HetaSettings
        from heta_lite.targets import TargetSpec

        ctx = make_context(state.lm, "The capital of France is", TargetSpec(generated=0, chat=False),
                           HetaSettings.preset("fast"))
        pos = next(t.index for t in ctx.tokens if t.display == "␣France")
        assert pos == 3 + ctx.frame_len  # 'The capital of' before it, after the frame
        await user.should_see(f"Target: '␣France' (prompt token at position {pos}, {pos} tokens of context)",
                              retries=20)
        user.find(marker="explain").click()
        await user.should_see("Why '␣France'?", retries=1800)


async def test_changing_the_frame_after_generate_asks_for_a_new_generate(state):
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        user.find("The capital of France is").click()
        user.find(marker="generate").click()
        await user.should_see("generated token at position 6,", retries=600)  # the frame is position 0
        _one(user, "frame").value = "none"  # Advanced settings, after the tokens were built with the frame
        user.find(marker="explain").click()
        await user.should_see("The Frame setting changed to 'none' after Generate", retries=20)
        user.find(marker="generate").click()  # rebuilt without the frame: one position fewer, and it explains
        await user.should_see("generated token at position 5,", retries=600)
        user.find(marker="explain").click()
        await user.should_see("Why '", retries=1800)
        await user.should_see("gate last-quarter · frame none")


async def test_bad_input_is_answered_inline(state):
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        user.find(marker="prompt").type("   ")
        user.find(marker="generate").click()
        await user.should_see("The prompt is empty")
        # longer than max_tokens is windowed (long_input, heta_lite/long_input.py); past the character cap: refused
        user.find(marker="prompt").clear().type("word " * 40_001)
        user.find(marker="generate").click()
        await user.should_see("the limit is 200,000", retries=600)
        user.find(marker="compare-btn").click()
        await user.should_see("Type both prompts to compare.")


async def test_template_only_context_is_refused_inline(state):
    """A chat prompt's first tokens have only template tokens before them: picking one is
    answered with what to change instead of a failing job."""
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        user.find(marker="prompt").type("Hi")
        user.find("Chat template").click()
        user.find(marker="generate").click()
        await user.should_see("Target:", retries=600)
        user.find("system").click()
        await user.should_see("pick a later one")


async def test_page_says_when_the_model_is_loading():
    st = AppState(model_name="smollm2-135m", queue=JobQueue())  # never loaded
    async with user_simulation(root=lambda: build_page(st)) as user:
        await user.open("/")
        await user.should_see("Loading the model (smollm2-135m)")
        user.find(marker="prompt").type("The capital of France is")
        user.find(marker="generate").click()
        await user.should_see("The model is still loading")
    st.queue.shutdown(wait_s=300)  # let a running model job stop before the process may exit


async def test_queue_position_with_two_jobs_ahead_and_cancel(state):
    started = threading.Event()
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        running = state.queue.submit(_blocker(started), kind="explain")
        assert await asyncio.to_thread(started.wait, 10)
        waiting = state.queue.submit(_blocker(threading.Event()), kind="explain")
        user.find("The capital of France is").click()
        user.find(marker="generate").click()
        await user.should_see("Waiting in the queue: position 2", retries=50)
        await user.should_see("starts in about")
        state.queue.cancel(waiting.id)  # the job ahead leaves the queue: we move up
        await user.should_see("Waiting in the queue: position 1", retries=50)
        user.find(marker="cancel").click()
        await user.should_see("Cancelled.", retries=50)
        state.queue.cancel(running.id)
        await until(lambda: state.queue.get(running.id).state == "cancelled", 10)


async def test_cancel_a_running_explanation(state):
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        user.find("The capital of France is").click()
        user.find(marker="generate").click()
        await user.should_see("Expected time here for", retries=900)
        user.find("Quality").click()
        user.find("accurate").click()
        user.find(marker="explain").click()
        await user.should_see("Explaining:", retries=900)
        user.find(marker="cancel").click()
        await user.should_see("Cancelled.", retries=900)
        await user.should_not_see("Why '")


async def test_reload_reattaches_to_the_job(state):
    """A reload of the tab that started a job shows its result; the job id alone (another tab, a
    shared link) does not (issue #18: a job's token lives in the tab's storage, never in the URL)."""
    from gui.page.runner import remember_token
    from heta_lite.engine import explain
    from heta_lite.settings import HetaSettings
    from heta_lite.targets import TargetSpec

    job = state.queue.submit(lambda control: explain(state.lm, "The sky is", TargetSpec(position=2, chat=False),
                                                     HetaSettings.preset("fast"), control=control), kind="explain",
                             surface="gui")

    def root(job: str | None = None) -> None:  # like gui/app.py's page
        build_page(state, job_id=job)

    async with user_simulation(root=root) as user:
        await user.open("/")
        with user:
            assert remember_token(job)
        await user.open(f"/?job={job.id}")
        await user.should_see("Why '", retries=1800)
    async with user_simulation(root=root) as user:
        await user.open("/?job=nope")
        await user.should_see("no longer known")


async def test_compare_two_prompts(state):
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        user.find(marker="compare-a").type("The capital of France is")
        user.find(marker="compare-b").type("No, think again: the capital of France is")
        user.find(marker="compare-btn").click()
        await user.should_see("A predicts", retries=1800)


async def test_correct_the_answer_and_compare(state):
    """After Generate: a correction, the model answers again, and both answers are explained side by
    side (heatmaps, top-5, logit lens) under a summary of what changed."""
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        user.find(marker="prompt").type("What is the capital of Australia?")
        user.find("Chat template").click()
        _one(user, "method").value = "saliency"  # the flow, not the method, is under test here
        await user.should_not_see(marker="correct-btn")  # hidden until there is an answer
        user.find(marker="generate").click()
        await user.should_see(marker="correct-btn", retries=600)
        assert "The model answered" in _one(user, "first-answer").text
        user.find(marker="correct-btn").click()  # no correction typed yet: told inline, nothing queued
        await user.should_see("Type a correction first")
        user.find(marker="correction-text").type("No, that is not right. Answer with one city name.")
        user.find(marker="correct-btn").click()
        await until(lambda: _one(user, "correction-summary").text.startswith("What changed"), 900)
        summary = _one(user, "correction-summary").text
        assert "after the correction" in summary and "question" in summary
        assert _one(user, "correction-before").text.startswith("Before: ")
        assert _one(user, "correction-after").text.startswith("After: ")
        heatmaps = [e for e in user.find(kind=ui.html).elements if "heta-tok" in getattr(e, "content", "")]
        assert len(heatmaps) >= 2  # one per side
        tops = [e for e in user.find(kind=ui.html).elements if "top-5" in getattr(e, "content", "")]
        assert len(tops) == 2
        lenses = [e for e in user.find(kind=ui.echart).elements
                  if e.visible and "p(target)" in str(e.options.get("legend", ""))]
        assert len(lenses) >= 2


async def test_memory_panel_without_gpu(state):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the no-GPU wording")
    async with user_simulation(root=lambda: build_page(state)) as user:
        await user.open("/")
        await user.should_see("No GPU present", retries=40)
        await user.should_see("Process RSS")
