"""experiments/bad_inputs.run against a stand-in server (httpx.MockTransport, no model): a 429
rate_limited is answered by waiting the server's Retry-After and sending the case again, so each
row is the answer to its case, whatever the requests before it used up."""
import json

import httpx

from experiments.bad_inputs import Case, corpus, run

JSON = {"content-type": "application/json"}


def _case(name: str, expect=(400, 422)) -> Case:
    return Case(name, "POST", "/api/v1/explain", json.dumps({"prompt": name}).encode(), JSON, expect)


def _limited(retry_after: str = "7", code: str = "rate_limited") -> httpx.Response:
    return httpx.Response(429, headers={"retry-after": retry_after},
                          json={"error": {"code": code, "message": "Too many requests; try again in 7 s."}})


def _bad_input() -> httpx.Response:
    return httpx.Response(400, json={"error": {"code": "bad_input", "message": "The prompt is empty."}})


def _client(answers: dict[str, list[httpx.Response]], seen: list[str]) -> httpx.Client:
    """Answers each prompt from its list in order (the last one repeats)."""
    def handler(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["prompt"]
        seen.append(prompt)
        queue = answers[prompt]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return httpx.Client(base_url="http://stand-in", transport=httpx.MockTransport(handler))


def test_a_rate_limited_case_is_sent_again_after_retry_after():
    slept, seen = [], []
    answers = {"a": [_bad_input()], "b": [_limited("7"), _limited("2"), _bad_input()], "c": [_bad_input()]}
    rows = run("unused", [_case("a"), _case("b"), _case("c")], client=_client(answers, seen), sleep=slept.append)
    assert [(r["case"], r["status"], r["ok"], r["rate_retries"]) for r in rows] == \
        [("a", 400, True, 0), ("b", 400, True, 2), ("c", 400, True, 0)]
    assert slept == [7.0, 2.0] and seen == ["a", "b", "b", "b", "c"]


def test_retries_are_bounded_and_a_case_still_limited_fails():
    slept, seen = [], []
    rows = run("unused", [_case("a")], client=_client({"a": [_limited("500")]}, seen), sleep=slept.append,
               max_rate_retries=3)
    assert (rows[0]["status"], rows[0]["code"], rows[0]["ok"], rows[0]["rate_retries"]) == (429, "rate_limited", False, 3)
    assert slept == [60.0] * 3 and len(seen) == 4  # each wait capped at a minute


def test_other_429s_are_answers_not_retried():
    slept, seen = [], []
    rows = run("unused", [_case("a", expect=(429,))], client=_client({"a": [_limited(code="too_many_jobs")]}, seen),
               sleep=slept.append)
    assert (rows[0]["status"], rows[0]["ok"], rows[0]["rate_retries"]) == (429, True, 0) and slept == [] and seen == ["a"]


def test_every_corpus_case_is_sent_once_when_nothing_is_limited():
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.method, request.url.path))
        return _bad_input()

    cases = corpus()
    rows = run("unused", cases, client=httpx.Client(base_url="http://stand-in", transport=httpx.MockTransport(handler)),
               sleep=lambda s: (_ for _ in ()).throw(AssertionError("slept")))
    assert len(rows) == len(sent) == len(cases) and [r["case"] for r in rows] == [c.name for c in cases]
    assert all(r["rate_retries"] == 0 for r in rows)


def test_a_case_without_an_answer_in_time_is_a_failed_row_and_the_run_goes_on():
    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["prompt"] == "slow":
            raise httpx.ReadTimeout("timed out", request=request)
        return _bad_input()

    rows = run("unused", [_case("slow"), _case("next")],
               client=httpx.Client(base_url="http://stand-in", transport=httpx.MockTransport(handler)))
    assert [(r["case"], r["status"], r["code"], r["ok"]) for r in rows] == \
        [("slow", None, "client_timeout", False), ("next", 400, "bad_input", True)]
