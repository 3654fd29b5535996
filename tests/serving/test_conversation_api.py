"""`conversation` on POST /api/v1/explain (issue #17 item 1, correct and compare): the model's
answer to a list of turns, its report recording them; malformed conversations get a 4xx naming
the problem before anything is queued; every turn stays out of the logs."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gui.serving import register_api
from gui.serving.middleware import _prompts_of
from gui.serving.ratelimit import Limits
from gui.state import AppState
from heta_lite.jobs import JobQueue
from heta_lite.report import Report

OPEN = Limits(requests_per_minute=6000, burst=1000, concurrent_jobs=100)
TURNS = [{"role": "user", "content": "What is the capital of Australia?"},
         {"role": "assistant", "content": "Sydney."},
         {"role": "user", "content": "No, that is wrong. Try again."}]


@pytest.fixture(scope="module")
def client(smollm):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy shared CPU: one thread is faster here (see test_batch.py)
    state = AppState(model_name="smollm2-135m", queue=JobQueue(concurrency=1))
    state.lm = smollm
    app = FastAPI()
    register_api(app, state, OPEN)
    try:
        with TestClient(app) as c:
            yield c, state
    finally:
        state.queue.shutdown(wait_s=60)
        torch.set_num_threads(threads)


def test_a_conversation_is_explained_at_the_models_answer(client, smollm):
    c, _ = client
    r = c.post("/api/v1/explain", json={"conversation": TURNS, "method": "saliency", "quality": "fast",
                                        "target": {"max_new_tokens": 2}})
    assert r.status_code == 200, r.text
    doc = Report.from_dict(r.json()).to_dict()
    assert doc["conversation"] == TURNS and doc["prompt"] == TURNS[-1]["content"]
    assert doc["target"]["mode"] == "generated" and doc["target"]["generated_index"] == 0
    expected = smollm.tokenizer.apply_chat_template(TURNS, tokenize=False, add_generation_prompt=True)
    assert doc["text"].startswith(expected)  # the chat template's rendering, then the answer
    scored = "".join(t["text"] for t in doc["tokens"] if not t["special"])
    assert scored.replace(" ", "") == "".join(t["content"] for t in TURNS).replace(" ", "")


@pytest.mark.parametrize("body, status, words", [
    ({"conversation": TURNS, "prompt": "x"}, 422, "either `prompt` or `conversation`"),
    ({"target": {"generated": 0}}, 422, "either `prompt` or `conversation`"),
    ({"conversation": TURNS[:2]}, 400, "end with a user turn"),
    ({"conversation": [TURNS[0], TURNS[2]]}, 400, "alternate"),
    ({"conversation": TURNS, "target": {"position": 3}}, 400, "not target.position"),
    ({"conversation": [{"role": "system", "content": "x"}]}, 422, "role"),
    ({"conversation": [dict(TURNS[0], content="word " * 2100), TURNS[1], dict(TURNS[2], content="word " * 2100)]},
     400, "the limit is 20,000"),
])
def test_malformed_conversations_are_refused_before_queueing(client, body, status, words):
    c, state = client
    jobs = len(state.queue._jobs)
    r = c.post("/api/v1/explain", json=body)
    assert r.status_code == status, r.text
    assert words in r.text
    assert len(state.queue._jobs) == jobs


def test_every_turn_and_every_batch_prompt_is_registered_as_request_text():
    import json

    body = json.dumps({"conversation": TURNS, "items": [{"prompt": "batch one"}, 7], "prompt": None}).encode()
    assert _prompts_of(body) == [t["content"] for t in TURNS] + ["batch one"]
    assert _prompts_of(b'{"conversation": 5, "items": "x"}') == []  # odd shapes: the route answers them
