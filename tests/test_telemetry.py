"""Logs never carry request text, even from exceptions."""
import io
import json
import logging

from gui.telemetry import JsonFormatter, NoTextFilter


def _logger():
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    flt = NoTextFilter()
    h.addFilter(flt)
    h.setFormatter(JsonFormatter())
    lg = logging.getLogger("heta-test-telemetry")
    lg.handlers = [h]
    lg.propagate = False
    lg.setLevel(logging.INFO)
    return lg, buf, flt


def test_sensitive_fields_are_dropped_and_exceptions_lose_their_message():
    lg, buf, flt = _logger()
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
    assert lines[0]["route"] == "/x" and "prompt" not in lines[0]
    assert lines[1]["exc_type"] == "ValueError" and lines[1]["exc_where"]
    assert lines[2]["msg"].startswith("[redacted")
