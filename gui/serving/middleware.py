"""What /api/ requests pass through before any route: a streaming body cap, request id, JSON log
line and metrics, and the JSON error shape for validation and HTTP errors; every other body is
capped too. Installed on the app (a router cannot carry middleware).

The guard is plain ASGI (not `@app.middleware("http")`): the body cap must see the body as it
arrives, chunk by chunk, and stop reading at the limit. The Host / Origin guard is in hosts.py
(re-exported here for older imports: run.py, the tests).
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error, error_response
from .hosts import (LOOPBACK_HOSTS, SOCKETIO_PREFIX, HostOriginGuard, desktop_hosts,  # noqa: F401 - re-exported
                    install_host_guard, same_origin, split_host)
from .schemas import MAX_BODY_BYTES
from .telemetry import Metrics, remember_text

log = logging.getLogger("heta_lite.api")
LONG_DOCUMENTS = ("For a long document use the CLI (heta-lite explain --prompt-file) or the page: they take up to "
                  "200,000 characters and explain the last window of it (docs/method.md, 'Long inputs').")

# Every other body (NiceGUI's own endpoints: socket.io long-polling, ...) is capped too, at Caddy's
# limit: nothing the page sends legitimately comes near it.
MAX_OTHER_BODY_BYTES = 1024 * 1024
# Past the cap, what a client is still sending is read and thrown away up to this much more before
# the 413 (Caddy's own cap is 1 MB), so that it sees the answer instead of a reset (see drain);
# nothing of it is kept. Beyond that the connection is cut.
DRAIN_BYTES = 1024 * 1024


# -- the API guard --------------------------------------------------------------------------------
class BodyTooLarge(Exception):
    pass


async def read_capped(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, read chunk by chunk, stopping as soon as it passes `limit` bytes: (body,
    False), or (b"", True) when it is too large (what was read is dropped; the rest is not read
    here)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            return b"", True
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks), False


async def drain(receive: Receive, limit: int | None = None, timeout_s: float = 10.0) -> bool:
    """Before a 413 goes out: read and discard what the client is still sending, up to `limit`
    bytes (DRAIN_BYTES) and `timeout_s`, keeping nothing (memory: one chunk). uvicorn closes the
    connection as soon as that answer is complete, and closing with unread data makes the kernel
    reset the connection: a client that writes its whole body before reading (most do) would see
    the reset, not the 413. A larger or slower body is cut off. True if the body ended."""
    import asyncio

    limit = DRAIN_BYTES if limit is None else limit
    seen = 0

    async def loop() -> bool:
        nonlocal seen
        while seen <= limit:
            message = await receive()
            if message["type"] != "http.request":
                return True
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
        return False

    try:
        return await asyncio.wait_for(loop(), timeout_s)
    except asyncio.TimeoutError:
        return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the buffered body over once, then the real one (so a route still sees
    the client disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _prompts_of(body: bytes) -> list[str]:
    """The request texts of an API body (registered with the log filter while the request runs)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, bad UTF-8, nesting too deep: the route answers
        return []
    if not isinstance(data, dict):
        return []
    def listed(key: str) -> list:
        value = data.get(key)
        return [t for t in value if isinstance(t, dict)] if isinstance(value, list) else []

    texts = [data.get("prompt")]
    texts += [t.get("content") for t in listed("conversation")]  # /explain of a conversation
    texts += [t.get("prompt") for t in listed("items")]  # /explain/batch
    return [t for t in texts if isinstance(t, str) and t]


class ApiGuard:
    """/api/ requests: request id, body cap while streaming (64 KiB: nothing past the limit is
    kept, whether the size was declared or the body is chunked; at most DRAIN_BYTES more are read
    and discarded before the 413, more than that is cut off), unhandled errors as the JSON 500,
    one log line and the metrics. Other paths get the body cap only (MAX_OTHER_BODY_BYTES)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, client_of: Callable[[Request], str]) -> None:
        self.app, self.metrics, self.client_of = app, metrics, client_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if not path.startswith("/api/"):
            return await self._capped_other(scope, receive, send)
        request = Request(scope)
        rid = secrets.token_hex(6)
        t0 = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        declared = request.headers.get("content-length", "")
        size = int(declared) if declared.isdigit() else 0
        forget: Callable[[], None] = lambda: None
        if size > MAX_BODY_BYTES:
            if size <= MAX_BODY_BYTES + DRAIN_BYTES:
                await drain(receive)
            await self._too_large(scope, receive, send_with_id, size)
        else:
            body, too_large = await read_capped(receive, MAX_BODY_BYTES)
            if too_large:
                size = 0
                await drain(receive)
                await self._too_large(scope, receive, send_with_id, None)
            else:
                size = len(body)
                forget = remember_text(*_prompts_of(body))
                try:
                    await self.app(scope, _replay(body, receive), send_with_id)
                except Exception:  # noqa: BLE001
                    log.exception("unhandled error", extra={"fields": {"request_id": rid}})
                    if not status["started"]:
                        await error_response(RuntimeError())(scope, receive, send_with_id)
                finally:
                    forget()
        route_obj = scope.get("route")
        route = getattr(route_obj, "path", None) or path
        self.metrics.requests.labels(route=route, method=scope["method"], status=str(status["code"])).inc()
        if status["code"] >= 400:
            self.metrics.errors.labels(code=str(status["code"])).inc()
        log.info("request", extra={"fields": {"request_id": rid, "route": route, "method": scope["method"],
                                              "status": status["code"], "body_bytes": size,
                                              "ms": round(1000 * (time.perf_counter() - t0), 1),
                                              "client": self.client_of(request)}})

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, size: int | None) -> None:
        said = f"{size:,} bytes" if size is not None else f"more than {MAX_BODY_BYTES:,} bytes"
        resp = error(413, "body_too_large", f"The request body is {said}; the limit is {MAX_BODY_BYTES:,}. "
                                            f"{LONG_DOCUMENTS}")
        resp.headers["Connection"] = "close"  # the unread rest of the body is not waited for
        await resp(scope, receive, send)

    async def _capped_other(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = Request(scope).headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_OTHER_BODY_BYTES:
            return await _plain_413(scope, receive, send)
        seen, started = 0, False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_OTHER_BODY_BYTES:
                    raise BodyTooLarge()
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await _plain_413(scope, receive, send)


async def _plain_413(scope: Scope, receive: Receive, send: Send) -> None:
    from starlette.responses import PlainTextResponse

    await PlainTextResponse("Request body too large", status_code=413, headers={"Connection": "close"})(
        scope, receive, send)


def install(app: FastAPI, metrics: Metrics, client_of: Callable[[Request], str]) -> None:
    app.add_middleware(ApiGuard, metrics=metrics, client_of=client_of)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = ".".join(str(x) for x in first.get("loc", []) if x != "body") or "body"
        msg = first.get("msg", "invalid request")
        if first.get("type") == "string_too_long" and loc.split(".")[-1] in ("prompt", "content"):
            msg += f". {LONG_DOCUMENTS}"
        return error(422, "invalid_request", f"{loc}: {msg}", field=loc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith("/api/"):
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
            return error(exc.status_code, code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
