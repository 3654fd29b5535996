"""Metrics (Prometheus) and structured logs that never contain prompts or token text.

The log filter drops any record argument or extra field whose name says it carries text
(prompt, text, generated, token, display, answer) and redacts the message if a known prompt
of an active request appears in it — belt and braces for the privacy rule.
"""
from __future__ import annotations

import json
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SENSITIVE_KEYS = {"prompt", "text", "generated", "token", "tokens", "display", "answer", "input_text"}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("heta_requests_total", "API requests", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("heta_request_seconds", "API request latency", ["route", "quality"],
                                 buckets=(0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600), registry=self.registry)
        self.errors = Counter("heta_errors_total", "errors by code", ["code"], registry=self.registry)
        self.queue_depth = Gauge("heta_queue_depth", "jobs waiting", registry=self.registry)
        self.queue_wait = Histogram("heta_queue_wait_seconds", "time from submit to start",
                                    buckets=(0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300), registry=self.registry)
        self.stage = Histogram("heta_stage_seconds", "job stage durations", ["stage"],
                               buckets=(0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300), registry=self.registry)
        self.rss = Gauge("heta_process_rss_bytes", "process resident memory", registry=self.registry)
        self.gpu_used = Gauge("heta_gpu_used_bytes", "GPU memory used (NVML; 0 without a GPU)",
                              registry=self.registry)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(time.time(), 3), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        for k, v in getattr(record, "fields", {}).items():
            out[k] = v
        if record.exc_info and record.exc_info[0] is not None:
            # the exception's type and where it happened, never its message (it may quote input text)
            import traceback

            tb = traceback.extract_tb(record.exc_info[2])
            out["exc_type"] = record.exc_info[0].__name__
            out["exc_where"] = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in tb[-5:]]
        return json.dumps(out, ensure_ascii=False)


class NoTextFilter(logging.Filter):
    """Drop sensitive fields; redact messages that contain a registered prompt."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: v for k, v in fields.items() if k not in SENSITIVE_KEYS}
        if self.secrets:
            msg = record.getMessage()
            if any(s and s in msg for s in list(self.secrets)):
                record.msg, record.args = "[redacted: message contained request text]", ()
        return True


def setup_logging(json_logs: bool = True) -> NoTextFilter:
    flt = NoTextFilter()
    handler = logging.StreamHandler()
    handler.addFilter(flt)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return flt
