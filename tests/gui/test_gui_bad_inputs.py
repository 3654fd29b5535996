"""The bad-input corpus through the GUI (the API side is tests/serving/test_api.py and
experiments/bad_inputs.py): every case a page user can produce gets its inline message, odd but
valid text is tokenized and shown, and the page still works afterwards."""
import json
import os
from pathlib import Path

import pytest

from experiments.bad_inputs import corpus, gui_cases, run_gui
from gui.state import AppState
from heta_lite.jobs import JobQueue

pytestmark = pytest.mark.slow


def test_gui_cases_cover_the_prompt_shaped_api_cases():
    api = {c.name for c in corpus()}
    gui = {c.name for c in gui_cases()}
    prompt_shaped = {"empty prompt", "whitespace prompt", "only newlines", "1 MB prompt", "prompt over char limit",
                     "prompt over token limit", "control characters only", "zero-width only", "right-to-left text",
                     "emoji", "prompt-injection-looking text", "max_new_tokens zero", "max_new_tokens huge",
                     "unknown job id", "admin without token", "admin wrong token"}
    assert prompt_shaped <= api and prompt_shaped <= gui


async def test_every_gui_case_is_answered_inline(smollm):
    state = AppState(model_name="smollm2-135m", default_quality="fast", queue=JobQueue())
    state.lm = smollm
    try:
        results = await run_gui(state)
    finally:
        state.queue.shutdown(wait_s=300)  # let a running model job stop before the process may exit
    if os.environ.get("HETA_BAD_INPUTS_GUI_OUT"):  # experiments/bad_inputs.py --gui collects these
        Path(os.environ["HETA_BAD_INPUTS_GUI_OUT"]).write_text(json.dumps(results))
    failed = [r for r in results if not r["ok"]]
    assert not failed, failed
    assert len(results) == len(gui_cases())
    assert {r["gui"] for r in results} == {"message", "shown"}
