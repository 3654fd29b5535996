"""The API's error answers: formatting only. What an error answers (HTTP status, public code,
Retry-After) is carried by its class (heta_lite/errors.py: `http_status`, `public_code`,
`retry_after_s`; AdminDenied in gui/admin.py too), refined by an instance where the instance
knows more (ModelNotLoaded's registry state, QueueFull's wait).

A failed job keeps the answer of the error that ended it (`job.error_http`), so the direct call
and the job answer the same; a job that ended without an exception (cancelled, shut down) is
looked up by its `error_code` (`error_class`). Anything that is not a HetaError is a bug: 500
with a fixed message. Body: `{"error": {"code", "message", "field"?}}`.
"""
from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from heta_lite.errors import HetaError, HttpFacts, http_facts

INTERNAL_MESSAGE = "Internal error; the server keeps running."
_INTERNAL = HttpFacts(500, "internal", None)


def error(status: int, code: str, message: str, field: str | None = None,
          retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def error_class(code: str | None) -> type | None:
    """The HetaError subclass whose `code` is `code` (what a failed job kept), or None."""
    todo = [HetaError]
    while todo:
        cls = todo.pop(0)
        if cls.__dict__.get("code") == code:
            return cls
        todo.extend(cls.__subclasses__())
    return None


def facts_of(err: BaseException | Any) -> HttpFacts:
    """Status, public code and Retry-After for an exception, or for a finished job that failed."""
    if isinstance(err, BaseException):
        return http_facts(err) if isinstance(err, HetaError) else _INTERNAL
    kept = getattr(err, "error_http", None)
    if kept is not None:
        return HttpFacts(*kept)
    cls = error_class(getattr(err, "error_code", None))
    return http_facts(cls) if cls is not None else _INTERNAL


def error_response(err: BaseException | Any) -> JSONResponse:
    """The HTTP answer for an exception, or for a finished job that failed (its error_http /
    error_code and error)."""
    status, code, retry = facts_of(err)
    if code == "internal":
        return error(500, "internal", INTERNAL_MESSAGE)
    message = str(err) if isinstance(err, BaseException) else (getattr(err, "error", None) or "failed")
    return error(status, code, message, field=getattr(err, "field", None), retry_after=retry)


def public_code(code: str | None) -> str:
    """The API's code for a core error code (a job view's error.code)."""
    cls = error_class(code)
    return http_facts(cls).code if cls is not None else (code or "internal")
