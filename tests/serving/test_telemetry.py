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


# -- issue #18 item 10: the second layer is filled, and plain logs are as private as JSON ----------
@pytest.fixture
def root_log():
    """setup_logging(json_logs) as run.py calls it, its handler writing into a buffer; the root
    and uvicorn loggers are put back afterwards."""
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = [(logging.getLogger(n), list(logging.getLogger(n).handlers), logging.getLogger(n).level,
              logging.getLogger(n).propagate) for n in names]

    def setup(json_logs: bool):
        from gui.serving.telemetry import setup_logging

        flt = setup_logging(json_logs=json_logs)
        buf = io.StringIO()
        logging.getLogger().handlers[0].setStream(buf)
        return buf, flt

    yield setup
    for lg, handlers, level, propagate in saved:
        lg.handlers, lg.level, lg.propagate = handlers, level, propagate


PROMPT = "Zyxwv private memo about Quokka"


@pytest.mark.parametrize("json_logs", [True, False])
def test_a_failing_request_logs_no_prompt_text_in_either_mode(root_log, monkeypatch, json_logs):
    """A request whose handling fails with an exception quoting the prompt, and a library that logs
    the prompt on the way: neither the JSON nor the plain log carries any of it (before: the plain
    formatter printed the exception message, and nothing redacted the library's message)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import heta_lite.targets
    from gui.serving import register_api
    from gui.state import AppState
    from heta_lite.jobs import JobQueue

    def failing_check(prompt, **kw):
        logging.getLogger("heta_lite.somewhere").warning("could not check %r", prompt)
        raise RuntimeError(f"cannot handle {prompt!r}")

    monkeypatch.setattr(heta_lite.targets, "check_prompt", failing_check)
    buf, _ = root_log(json_logs)
    state = AppState(model_name="smollm2-135m", queue=JobQueue())
    state.lm = type("Stub", (), {"quantization": "none", "name": "stub"})()  # "loaded": the route goes on
    app = FastAPI()
    register_api(app, state)
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.post("/api/v1/explain", json={"prompt": PROMPT, "target": {"position": 1}})
    finally:
        state.queue.shutdown()
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
    text = buf.getvalue()
    assert "RuntimeError" in text and "redacted" in text  # the failure and the library's line were logged ...
    assert not any(w in text for w in ("Zyxwv", "Quokka", "memo")), text  # ... without the prompt
    from gui.serving.telemetry import REQUEST_TEXT

    assert PROMPT not in REQUEST_TEXT  # forgotten once the request finished


@pytest.mark.parametrize("json_logs", [True, False])
def test_the_admin_token_is_never_logged(root_log, monkeypatch, json_logs):
    monkeypatch.setenv("HETA_LITE_ADMIN_TOKEN", "tok-9f8e7d6c5b4a")
    buf, flt = root_log(json_logs)
    logging.getLogger("heta-test-telemetry").warning("header was %s", "tok-9f8e7d6c5b4a")
    logging.getLogger("heta-test-telemetry").info("x", extra={"fields": {"auth": "tok-9f8e7d6c5b4a"}})
    assert "tok-9f8e7d6c5b4a" not in buf.getvalue() and "redacted" in buf.getvalue()


@pytest.mark.parametrize("json_logs", [True, False])
def test_a_traceback_inside_a_message_keeps_only_the_exception_type(root_log, json_logs):
    """uvicorn logs some failures as `logger.error(traceback.format_exc())`: the message itself is
    the traceback, its last line the exception's message."""
    import traceback

    buf, _ = root_log(json_logs)
    try:
        raise ValueError("the secret prompt text")
    except ValueError:
        logging.getLogger("uvicorn.error").error(traceback.format_exc())
    assert "ValueError" in buf.getvalue() and "secret prompt" not in buf.getvalue()


def test_short_texts_are_not_secrets():
    from gui.serving.telemetry import Secrets

    s = Secrets()
    s.add("a")
    s.add("abcd")
    s.add("abcd")
    s.discard("abcd")
    assert "a" not in s and "abcd" in s
    s.discard("abcd")
    assert not s
