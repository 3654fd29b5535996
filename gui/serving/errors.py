"""The one error-to-HTTP mapping of the API: for a direct call and for a job that failed.

Every error class has one HTTP status and one public code, looked up along its MRO in `HTTP`
(the core's error classes, and QueueFull from heta_lite/jobs.py, cannot carry the attributes
from here; ModelNotLoaded and AdminDenied, defined in gui/, carry `http_status` themselves). A job keeps
only its error's `code` and message, so `error_class(code)` finds the class again and the job's
failure goes through the same table. Body: `{"error": {"code", "message", "field"?}}`.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from fastapi.responses import JSONResponse

from heta_lite.errors import (HetaError, InputError, JobCancelled, JobTimeout, ModelUnavailableError,
                              ResourceLimitError)
from heta_lite.jobs import QueueFull

from ..admin import AdminDenied
from ..state import FAILED, LOADING, ModelNotLoaded

INTERNAL_MESSAGE = "Internal error; the server keeps running."


class Http(NamedTuple):
    status: int
    code: str | None  # None: the error's own `code`
    retry_after: int | None = None


HTTP: dict[type, Http] = {
    AdminDenied: Http(AdminDenied.http_status, None),  # admin_disabled | forbidden
    ModelNotLoaded: Http(ModelNotLoaded.http_status, "model_not_loaded"),
    QueueFull: Http(503, "queue_full"),  # Retry-After from the instance
    JobTimeout: Http(504, "timeout"),
    JobCancelled: Http(409, "cancelled"),
    ResourceLimitError: Http(507, "out_of_memory"),
    ModelUnavailableError: Http(503, "model_unavailable", 30),  # UnsupportedModelError included
    InputError: Http(400, "bad_input"),
    HetaError: Http(400, None),
}
_INTERNAL = Http(500, "internal")


def error(status: int, code: str, message: str, field: str | None = None,
          retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def http_of(cls: type) -> Http:
    for klass in cls.__mro__:
        if klass in HTTP:
            return HTTP[klass]
    return _INTERNAL


def error_class(code: str | None) -> type | None:
    """The HetaError subclass whose `code` is `code` (what a failed job kept), or None."""
    todo = [HetaError]
    while todo:
        cls = todo.pop(0)
        if cls.__dict__.get("code") == code:
            return cls
        todo.extend(cls.__subclasses__())
    return None


def error_response(err: BaseException | Any) -> JSONResponse:
    """The HTTP answer for an exception, or for a finished job that failed (its error_code/error)."""
    if isinstance(err, BaseException):
        cls, message = type(err), str(err)
    else:  # a Job: only its code and message survive the worker thread
        cls, message = error_class(getattr(err, "error_code", None)), getattr(err, "error", None) or "failed"
    if cls is None or not issubclass(cls, HetaError):
        return error(500, "internal", INTERNAL_MESSAGE)
    status, code, retry = http_of(cls)
    if isinstance(err, ModelNotLoaded) and err.state == LOADING:
        status, code, retry = 503, "model_loading", 10
    elif isinstance(err, ModelNotLoaded) and err.state == FAILED:
        status, code = 503, "model_failed"
    if isinstance(err, QueueFull):
        retry = err.retry_after_s
    own = err.code if isinstance(err, BaseException) else cls.code
    return error(status, code or own, message, field=getattr(err, "field", None), retry_after=retry)


def public_code(code: str | None) -> str:
    """The API's code for a core error code (a job view's error.code)."""
    cls = error_class(code)
    return (http_of(cls).code or code) if cls is not None else (code or "internal")
