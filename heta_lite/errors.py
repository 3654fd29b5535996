"""Errors a user can act on. Each carries one sentence that says what to change.

Interfaces (CLI, GUI, API) catch `HetaError` and show `str(err)`; anything else is a bug.

Each class also carries its one HTTP answer, so the API has a single mapping (issue #15 item 6):
`http_status`, `public_code` (the API's code; None: the class's own `code`) and `retry_after_s`
(a Retry-After hint, or None). Subclasses inherit them; an instance may refine them (ModelNotLoaded by
its registry state, QueueFull by its wait). `http_facts(err_or_class)` reads the triple; a failed job
keeps the triple of the error that ended it, so a job's failure answers like the direct call.
"""
from __future__ import annotations

import math
from typing import NamedTuple


class HttpFacts(NamedTuple):
    status: int
    code: str
    retry_after_s: int | None


class HetaError(Exception):
    """Base class: a problem the user can fix, with a one-sentence message."""

    code = "heta_error"
    http_status: int = 400
    public_code: str | None = None  # the API's code; None: `code`
    retry_after_s: int | None = None


class InputError(HetaError, ValueError):
    """Bad prompt, target or option (empty, too long, out of range)."""

    code = "bad_input"
    public_code = "bad_input"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ModelUnavailableError(HetaError):
    """The model can't be had here (no network, not cached, unsupported architecture)."""

    code = "model_unavailable"
    http_status = 503
    public_code = "model_unavailable"  # subclasses (UnsupportedModelError) answer the same
    retry_after_s = 30


class UnsupportedModelError(ModelUnavailableError):
    """The model loads but its architecture is not in the architecture table."""

    code = "unsupported_model"


class ModelNotLoaded(HetaError):
    """A request named a model/mode that is not loaded (users never trigger loads).

    `state` says why: "loading" (try again soon: 503 model_loading), "failed" (its load failed; an
    admin must act: 503 model_failed) or None (never loaded, or unloaded: 409), so callers never have
    to read the message to decide."""

    code = "model_not_loaded"
    http_status = 409
    public_code = "model_not_loaded"
    BY_STATE = {"loading": HttpFacts(503, "model_loading", 10), "failed": HttpFacts(503, "model_failed", None)}

    def __init__(self, message: str, state: str | None = None):
        super().__init__(message)
        self.state = state
        if state in self.BY_STATE:
            self.http_status, self.public_code, self.retry_after_s = self.BY_STATE[state]


class ResourceLimitError(HetaError):
    """The job would not fit the memory budget (or ran out of memory)."""

    code = "resource_limit"
    http_status = 507
    public_code = "out_of_memory"


class QueueFull(HetaError):
    """The job queue is full (or the server is shutting down); `retry_after_s` is a rough hint."""

    code = "queue_full"
    http_status = 503
    public_code = "queue_full"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ClientLimited(HetaError):
    """One client asked for more than its share (request rate, or jobs running at once)."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after_s: int, code: str = "rate_limited"):
        super().__init__(message)
        self.retry_after_s, self.code = retry_after_s, code  # code: rate_limited | too_many_jobs

    @classmethod
    def rate(cls, wait_s: float) -> "ClientLimited":
        """Out of tokens for `wait_s` seconds: Retry-After is that wait rounded up (at least 1 s),
        so a client that waits exactly as told is never early (the limiter allows 1e-9 tokens of
        float slack), and never needlessly late."""
        s = max(1, math.ceil(wait_s - 1e-9))
        return cls(f"Too many requests; try again in {s} s.", s)

    @classmethod
    def jobs(cls, cap: int) -> "ClientLimited":
        """Already `cap` unfinished jobs: retry when one ends (5 s is a hint, not a promise)."""
        return cls(f"You already have {cap} jobs running or queued; wait for one to finish.", 5, code="too_many_jobs")


class JobCancelled(HetaError):
    """The job was cancelled by the user; partial work was dropped."""

    code = "cancelled"
    http_status = 409
    public_code = "cancelled"


class JobTimeout(HetaError):
    """The job ran past its time limit; partial work was dropped."""

    code = "timeout"
    http_status = 504
    public_code = "timeout"


def http_facts(err: HetaError | type[HetaError]) -> HttpFacts:
    """The HTTP answer an error (instance, or class) carries: status, public code, Retry-After."""
    return HttpFacts(int(err.http_status), err.public_code or err.code, err.retry_after_s)
