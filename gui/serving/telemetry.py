"""Metrics (Prometheus) and structured logs that never contain prompts or token text.

The log filter drops any record argument or extra field whose name says it carries text
(prompt, text, generated, token, display, answer) and redacts the message if a known secret
appears in it — belt and braces for the privacy rule. The secrets are the admin token (added by
`setup_logging`), the prompt of every API request while it runs (`remember_text`, called by the
API guard) and the texts of every job until it ends (`JOB_TEXT`, through AppState.submit: async
API jobs and the page's jobs outlive their request). Neither formatter ever prints an exception's
message (it may quote input): only its type and where it happened.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import traceback
from typing import Callable

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


def _exception_summary(record: logging.LogRecord) -> dict | None:
    """The exception's type and the last frames' places, never its message."""
    if not record.exc_info or record.exc_info[0] is None:
        return None
    tb = traceback.extract_tb(record.exc_info[2])
    return {"exc_type": record.exc_info[0].__name__,
            "exc_where": [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in tb[-5:]]}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(time.time(), 3), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        for k, v in getattr(record, "fields", {}).items():
            out[k] = v
        out.update(_exception_summary(record) or {})
        return json.dumps(out, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """`--plain-logs`: one readable line, the fields as key=value; an exception as its type and
    places only (logging's default formatter would print its message and a full traceback)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(self._prepared(record))
        fields = getattr(record, "fields", {}) or {}
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        exc = _exception_summary(record)
        if exc:
            line += f" exc_type={exc['exc_type']} exc_where={' < '.join(reversed(exc['exc_where']))}"
        if record.stack_info:
            line += " (stack omitted)"
        return line

    def _prepared(self, record: logging.LogRecord) -> logging.LogRecord:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        return record


class Secrets:
    """Texts that must never appear in a log message (thread-safe; counted, so two requests with
    the same prompt keep it registered until both finish). Texts shorter than MIN_CHARS are not
    kept: they would redact unrelated messages, and can't identify a prompt."""

    MIN_CHARS = 4

    def __init__(self) -> None:
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        if text and len(text.strip()) >= self.MIN_CHARS:
            with self._lock:
                self._count[text] = self._count.get(text, 0) + 1

    def discard(self, text: str) -> None:
        with self._lock:
            n = self._count.get(text, 0) - 1
            if n > 0:
                self._count[text] = n
            else:
                self._count.pop(text, None)

    def __contains__(self, text: object) -> bool:
        return text in self._count

    def __iter__(self):
        with self._lock:
            return iter(list(self._count))

    def __len__(self) -> int:
        return len(self._count)

    def __bool__(self) -> bool:
        return bool(self._count)


#: the prompts of the API requests running now, and the admin token: every filter checks these
REQUEST_TEXT = Secrets()


def remember_text(*texts: str) -> Callable[[], None]:
    """Register request texts with every log filter until the returned function is called."""
    for t in texts:
        REQUEST_TEXT.add(t)

    def forget() -> None:
        for t in texts:
            REQUEST_TEXT.discard(t)

    return forget


class _JobTexts:
    """The texts of submitted jobs, registered until each job ends. A job that runs forgets its
    texts as its function returns (or raises); one that ends without running (cancelled while
    queued, the server shutting down) at the next `prune`: every registration and job end prunes,
    and so does the API's cancel."""

    def __init__(self) -> None:
        self._watched: list[tuple[object, Callable[[], None]]] = []
        self._lock = threading.Lock()

    def submit(self, submit: Callable[..., object], fn: Callable, texts: tuple[str, ...], **kwargs):
        """`submit(fn', **kwargs)` (a JobQueue's), `fn'` being `fn` with `texts` registered until it
        ends; returns the job."""
        texts = tuple(t for t in texts if isinstance(t, str) and t)
        if not texts:
            return submit(fn, **kwargs)
        forget = _once(remember_text(*texts))

        def job_fn(control):
            try:
                return fn(control)
            finally:
                forget()
                self.prune()

        try:
            job = submit(job_fn, **kwargs)
        except BaseException:
            forget()
            raise
        with self._lock:
            self._watched.append((job, forget))
        self.prune()
        return job

    def prune(self) -> None:
        """Forget the texts of every watched job that has ended."""
        from heta_lite.jobs import FINISHED

        with self._lock:
            ended, kept = [], []
            for w in self._watched:
                (ended if getattr(w[0], "state", None) in FINISHED else kept).append(w)
            self._watched = kept
        for _, forget in ended:
            forget()

    def __len__(self) -> int:
        return len(self._watched)


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    done = threading.Event()
    lock = threading.Lock()

    def once() -> None:
        with lock:
            if done.is_set():
                return
            done.set()
        fn()

    return once


#: every job submitted with its texts (AppState.submit: the API's async and sync jobs, the page's)
JOB_TEXT = _JobTexts()


TRACEBACK = "Traceback (most recent call last):"


class NoTextFilter(logging.Filter):
    """Drop sensitive fields; redact messages that contain a registered secret (its own `secrets`
    or the shared REQUEST_TEXT)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: v for k, v in fields.items()
                             if k not in SENSITIVE_KEYS and not self._leaks(str(v))}
        msg = record.getMessage()
        if TRACEBACK in msg:
            # a traceback formatted into the message (uvicorn's lifespan errors): its last line
            # carries the exception's message; keep the exception's type only
            last = msg.rstrip().rsplit("\n", 1)[-1]
            record.msg, record.args = f"[traceback omitted] {last.split(':', 1)[0].strip()[:200]}", ()
        elif (self.secrets or REQUEST_TEXT) and self._leaks(msg):
            record.msg, record.args = "[redacted: message contained request text]", ()
        return True

    def _leaks(self, text: str) -> bool:
        return any(s and s in text for s in (*self.secrets, *REQUEST_TEXT))


def setup_logging(json_logs: bool = True) -> NoTextFilter:
    """One handler on the root logger, through the filter, in JSON lines or plain lines. The admin
    token is a secret of the filter. Uvicorn's loggers must propagate here (run.py passes
    `log_config=None`), else its error log would print exception messages unfiltered."""
    flt = NoTextFilter()
    token = os.environ.get("HETA_LITE_ADMIN_TOKEN")
    if token:
        flt.secrets.add(token)
    handler = logging.StreamHandler()
    handler.addFilter(flt)
    handler.setFormatter(JsonFormatter() if json_logs else PlainFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True
    return flt
