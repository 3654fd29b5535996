"""Logs never carry request text, even from exceptions; checked on a private logger and on the
API's own request log (in process, no model). Every logger a test touches is put back as it was."""
import io
import json
import logging

import pytest

from gui.serving.telemetry import JsonFormatter, NoTextFilter


@pytest.fixture
def capture():
    """A function (logger name) -> (buffer, filter): the logger writes JSON lines through the
    privacy filter into the buffer; its handlers, level and propagation are restored afterwards."""
    touched = []

    def attach(name: str):
        lg = logging.getLogger(name)
        touched.append((lg, list(lg.handlers), lg.level, lg.propagate))
        buf = io.StringIO()
        h = logging.StreamHandler(buf)
        flt = NoTextFilter()
        h.addFilter(flt)
        h.setFormatter(JsonFormatter())
        lg.handlers = [h]
        lg.propagate = False
        lg.setLevel(logging.INFO)
        return lg, buf, flt

    yield attach
    for lg, handlers, level, propagate in touched:
        lg.handlers, lg.level, lg.propagate = handlers, level, propagate


def test_sensitive_fields_are_dropped_and_exceptions_lose_their_message(capture):
    lg, buf, flt = capture("heta-test-telemetry")
    lg.info("request", extra={"fields": {"route": "/x", "prompt": "my secret", "display": "tok", "ms": 3}})
    try:
        raise ValueError("cannot parse 'my secret'")
    except ValueError:
        lg.exception("job failed")
    flt.secrets.add("another secret")
    lg.info("oops: %s", "another secret")
    text = buf.getvalue()
    assert "secret" not in text
    lines = [json.loads(x) for x in text.splitlines()]
    assert len(lines) == 3
    assert lines[0]["route"] == "/x" and lines[0]["ms"] == 3 and "prompt" not in lines[0] and "display" not in lines[0]
    assert lines[1]["exc_type"] == "ValueError" and lines[1]["exc_where"] and lines[1]["msg"] == "job failed"
    assert lines[2]["msg"].startswith("[redacted")


def test_the_api_request_log_has_the_route_but_never_the_prompt(capture):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from gui.serving import register_api
    from gui.state import AppState
    from heta_lite.jobs import JobQueue

    _, buf, _ = capture("heta_lite.api")
    state = AppState(model_name="smollm2-135m", queue=JobQueue())  # never loaded: the request is refused
    app = FastAPI()
    register_api(app, state)
    try:
        with TestClient(app) as c:
            r = c.post("/api/v1/explain", json={"prompt": "Zyxwv private memo about Quokka"})
            assert r.status_code == 409
    finally:
        state.queue.shutdown()
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    req = [x for x in lines if x.get("route") == "/api/v1/explain"]
    assert len(req) == 1 and req[0]["status"] == 409 and req[0]["request_id"] == r.headers["x-request-id"]
    assert not any(w in buf.getvalue() for w in ("Zyxwv", "Quokka", "memo"))
