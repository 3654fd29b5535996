"""What every /api/ request passes through: body cap, request id, JSON log line and metrics,
and the JSON error shape for validation and HTTP errors. Installed on the app (a router cannot
carry middleware)."""
from __future__ import annotations

import logging
import secrets
import time
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import error, error_response
from .schemas import MAX_BODY_BYTES
from .telemetry import Metrics

log = logging.getLogger("heta_lite.api")


def install(app: FastAPI, metrics: Metrics, client_of: Callable[[Request], str]) -> None:
    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        if not path.startswith("/api/"):
            return await call_next(request)
        rid = secrets.token_hex(6)
        t0 = time.perf_counter()
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_BODY_BYTES:
            resp = error(413, "body_too_large", f"The request body is {size:,} bytes; the limit is {MAX_BODY_BYTES:,}.")
        else:
            body = await request.body()
            size = len(body)
            if size > MAX_BODY_BYTES:
                resp = error(413, "body_too_large", f"The request body is {size:,} bytes; the limit is "
                                                    f"{MAX_BODY_BYTES:,}.")
            else:
                try:
                    resp = await call_next(request)
                except Exception:  # noqa: BLE001
                    log.exception("unhandled error", extra={"fields": {"request_id": rid}})
                    resp = error_response(RuntimeError())
        route = request.scope.get("route").path if request.scope.get("route") else path.split("?")[0]
        metrics.requests.labels(route=route, method=request.method, status=str(resp.status_code)).inc()
        if resp.status_code >= 400:
            metrics.errors.labels(code=str(resp.status_code)).inc()
        resp.headers["X-Request-ID"] = rid
        log.info("request", extra={"fields": {"request_id": rid, "route": route, "method": request.method,
                                              "status": resp.status_code, "body_bytes": size,
                                              "ms": round(1000 * (time.perf_counter() - t0), 1),
                                              "client": client_of(request)}})
        return resp

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = ".".join(str(x) for x in first.get("loc", []) if x != "body") or "body"
        msg = first.get("msg", "invalid request")
        return error(422, "invalid_request", f"{loc}: {msg}", field=loc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith("/api/"):
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
            return error(exc.status_code, code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
