"""REST API (FastAPI routes inside the NiceGUI app; OpenAPI at /docs), on the same job queue
as the GUI.

Errors are JSON `{"error": {"code", "message", "field"?}}` with a stable code: 400/422 bad
input, 403 admin disabled, 404 unknown job, 409 cancelled or model not loaded, 413 body too large,
429 rate limited and 503 queue full / model loading (with Retry-After), 504 time limit, 507 out of
memory, 500 internal. Users choose among loaded models (`model`, `quant`); loading, switching,
reloading and unloading models are admin actions (token in HETA_LITE_ADMIN_TOKEN).
Logs and metrics carry sizes, timings and outcomes, never prompt or token text.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from heta_lite.errors import (HetaError, InputError, JobCancelled, JobTimeout, ModelUnavailableError,
                              ResourceLimitError)
from heta_lite.jobs import DONE, FINISHED, QueueFull

from .ratelimit import Limits, RateLimiter, client_id
from .state import FAILED, LOADING, AppState, ModelNotLoaded
from .telemetry import Metrics

log = logging.getLogger("heta_lite.api")

MAX_BODY_BYTES = 64 * 1024
MAX_PROMPT_CHARS = 20_000


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    position: int | None = Field(None, ge=1, le=100_000, description="teacher-forced target position")
    generated: int | None = Field(None, ge=0, le=63, description="index of the generated token (0 = first)")
    max_new_tokens: int = Field(16, ge=1, le=64)
    chat: bool | None = None


class OptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    estimator: Literal["block", "global"] | None = None
    num_probes: int | None = Field(None, ge=1, le=32)
    mask: Literal["zero", "mean", "pad", "delete"] | None = None
    beta: float | None = Field(None, ge=0, le=10)
    gamma: float | None = Field(None, ge=0, le=10)
    combination: Literal["normalised", "raw"] | None = None
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    max_tokens: int | None = Field(None, ge=1, le=1024)
    information: Literal["exact", "taylor"] | None = None
    time_budget_s: float | None = Field(None, gt=0, le=600)


class ExplainIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    prompt: str = Field(..., max_length=MAX_PROMPT_CHARS)
    target: TargetIn = Field(default_factory=TargetIn)
    method: str = Field("heta", max_length=64)
    quality: Literal["fast", "balanced", "accurate"] = "fast"
    options: OptionsIn = Field(default_factory=OptionsIn)
    run_async: bool = Field(False, alias="async", description="return a job id at once")
    model: str | None = Field(None, max_length=200, description="a loaded model (default: the primary)")
    quant: str | None = Field(None, max_length=32, description="its quantization mode (default: the primary's)")


class AdminModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., min_length=1, max_length=200, description="short name, hub id or folder")
    quant: str = Field("none", max_length=32)
    primary: bool = Field(True, description="make it the model requests use by default")


class AdminUnloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., min_length=1, max_length=200)
    quant: str = Field("none", max_length=32)


def error(status: int, code: str, message: str, field: str | None = None,
          retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def error_for(err: Exception) -> JSONResponse:
    if isinstance(err, ModelNotLoaded):
        if err.state == LOADING:
            return error(503, "model_loading", str(err), retry_after=10)
        if err.state == FAILED:
            return error(503, "model_failed", str(err))
        return error(409, "model_not_loaded", str(err))
    if isinstance(err, QueueFull):
        return error(503, "queue_full", str(err), retry_after=err.retry_after_s)
    if isinstance(err, JobTimeout):
        return error(504, "timeout", str(err))
    if isinstance(err, JobCancelled):
        return error(409, "cancelled", str(err))
    if isinstance(err, ResourceLimitError):
        return error(507, "out_of_memory", str(err))
    if isinstance(err, ModelUnavailableError):
        return error(503, "model_unavailable", str(err), retry_after=30)
    if isinstance(err, InputError):
        return error(400, "bad_input", str(err), field=err.field)
    if isinstance(err, HetaError):
        return error(400, err.code, str(err))
    return error(500, "internal", "Internal error; the server keeps running.")


_STATUS_FOR_CODE = {"bad_input": 400, "timeout": 504, "cancelled": 409, "resource_limit": 507, "queue_full": 503,
                    "model_unavailable": 503, "internal": 500}


def register_api(app: FastAPI, state: AppState, limits: Limits | None = None, metrics: Metrics | None = None) -> None:
    limiter = RateLimiter(limits or Limits())
    metrics = metrics or Metrics()
    state.metrics = metrics  # type: ignore[attr-defined]

    def client_of(request: Request) -> str:
        peer = request.client.host if request.client else None
        return client_id(peer, request.headers.get("x-forwarded-for"), limiter.limits.trusted_proxies)

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
                    resp = error(500, "internal", "Internal error; the server keeps running.")
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

    @app.get("/api/v1/health")
    def health():
        ready = state.ready
        body = {"status": "ok" if ready else ("error" if state.load_error else "loading"), "model_loaded": ready,
                "model": state.lm.name if ready else state.model_name,
                "quant": state.lm.quantization if ready else state.quantization,
                "device": str(state.lm.device) if ready else None, "queue_depth": state.queue.depth,
                "running": state.queue.running,
                "models": [{k: m[k] for k in ("model", "quant", "state", "primary")} for m in state.models()]}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/api/v1/models")
    def models():
        from heta_lite.methods import method_names
        from heta_lite.models.registry import SHORT_NAMES

        return {"loaded": state.lm.describe() if state.ready else None, "models": state.models(),
                "available": [{"name": k, "source": v.location, "description": v.description}
                              for k, v in SHORT_NAMES.items()], "methods": method_names()}

    @app.post("/api/v1/explain")
    async def explain_route(body: ExplainIn, request: Request):
        client = client_of(request)
        wait = limiter.take(client)
        if wait > 0:
            return error(429, "rate_limited", f"Too many requests; try again in {int(wait) + 1} s.",
                         retry_after=int(wait) + 1)
        if body.model is None and body.quant is None and not state.ready:
            try:  # answer before any validation; the registry's state picks loading (503 + Retry-After) or failed
                state.get()
            except ModelNotLoaded as err:
                return error_for(err)
        try:
            fn = _explain_job(state, body)
        except HetaError as err:
            return error_for(err)
        if limiter.active_jobs(client, _alive(state)) >= limiter.limits.concurrent_jobs:
            return error(429, "too_many_jobs", f"You already have {limiter.limits.concurrent_jobs} jobs running or "
                                               "queued; wait for one to finish.", retry_after=5)
        try:
            job = state.queue.submit(fn, kind="explain", owner=client)
        except QueueFull as err:
            return error_for(err)
        limiter.start_job(client, job.id, _alive(state))
        metrics.queue_depth.set(state.queue.depth)
        if body.run_async:
            return JSONResponse({"job_id": job.id, "state": job.state, "queue_position": state.queue.position(job)},
                                status_code=202)
        while job.state not in FINISHED:
            await asyncio.sleep(0.05)
        _observe(metrics, job, body.quality)
        if job.state == DONE:
            return JSONResponse(job.result)
        return error(_STATUS_FOR_CODE.get(job.error_code or "internal", 500), job.error_code or "internal",
                     job.error or "failed")

    @app.get("/api/v1/jobs/{job_id}")
    def job_status(job_id: str):
        job = state.queue.get(job_id)
        if job is None:
            return error(404, "unknown_job", f"No job {job_id!r} (finished jobs are kept for a while, then dropped).")
        return _job_view(state, job)

    @app.delete("/api/v1/jobs/{job_id}")
    def job_cancel(job_id: str):
        job = state.queue.get(job_id)
        if job is None:
            return error(404, "unknown_job", f"No job {job_id!r}.")
        state.queue.cancel(job_id)
        return _job_view(state, job, with_result=False)

    @app.get("/api/v1/jobs/{job_id}/events")
    async def job_events(job_id: str):
        job = state.queue.get(job_id)
        if job is None:
            return error(404, "unknown_job", f"No job {job_id!r}.")

        async def stream():
            last = None
            while True:
                view = _job_view(state, job, with_result=False)
                text = json.dumps(view)
                if text != last:
                    yield f"event: progress\ndata: {text}\n\n"
                    last = text
                if job.state in FINISHED:
                    yield f"event: end\ndata: {json.dumps({'state': job.state})}\n\n"
                    return
                await asyncio.sleep(0.25)

        return StreamingResponse(stream(), media_type="text/event-stream")

    def admin_denied(request: Request) -> JSONResponse | None:
        return admin_check(request.headers.get("x-admin-token", ""), state)

    @app.post("/api/v1/admin/clear-cache")
    def clear_cache(request: Request):
        if (denied := admin_denied(request)) is not None:
            return denied
        if state.cache is not None:
            state.cache.clear()
        return {"cleared": state.cache is not None}

    @app.get("/api/v1/admin/models")
    def admin_models(request: Request):
        if (denied := admin_denied(request)) is not None:
            return denied
        return {"models": state.models(), "max_models": state.max_models}

    @app.post("/api/v1/admin/models")
    def admin_load(body: AdminModelIn, request: Request):
        """Load a model/mode in the background (202); with primary, switch requests to it."""
        if (denied := admin_denied(request)) is not None:
            return denied
        try:
            slot = state.load(body.model, body.quant, primary=body.primary)
        except HetaError as err:
            return error_for(err)
        log.info("admin load", extra={"fields": {"quant": slot.quant, "primary": body.primary}})
        return JSONResponse({"model": slot.describe(primary=body.primary), "models": state.models()}, status_code=202)

    @app.post("/api/v1/admin/models/reload")
    def admin_reload(request: Request):
        if (denied := admin_denied(request)) is not None:
            return denied
        try:
            slot = state.reload()
        except HetaError as err:
            return error_for(err)
        return JSONResponse({"model": slot.describe(primary=True)}, status_code=202)

    @app.delete("/api/v1/admin/models")
    def admin_unload(body: AdminUnloadIn, request: Request):
        if (denied := admin_denied(request)) is not None:
            return denied
        try:
            state.unload(body.model, body.quant)
        except ModelNotLoaded as err:
            return error(404, "model_not_loaded", str(err))
        except InputError as err:
            return error_for(err)
        except HetaError as err:
            return error(409, "primary_model", str(err))
        return {"models": state.models()}

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    def api_not_found(rest: str):
        return error(404, "not_found", "No such API route; see /docs for the API.")

    @app.get("/metrics")
    def metrics_route():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from profiling.memory import snapshot

        snap = snapshot()
        metrics.rss.set(snap.rss_bytes)
        metrics.gpu_used.set(snap.gpu_used_bytes or 0)
        metrics.queue_depth.set(state.queue.depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def admin_check(token_given: str, state: AppState) -> JSONResponse | None:
    """None if the admin token is configured and matches; else the 403 to send."""
    token = os.environ.get("HETA_LITE_ADMIN_TOKEN")
    if not token:
        return error(403, "admin_disabled", "Admin actions are disabled: set HETA_LITE_ADMIN_TOKEN to enable them.")
    if not secrets.compare_digest(token_given or "", token):
        return error(403, "forbidden", "Wrong or missing X-Admin-Token.")
    return None


def _alive(state: AppState):
    return lambda job_id: (state.queue.get(job_id) is not None and state.queue.get(job_id).state not in FINISHED)


def _observe(metrics: Metrics, job, quality: str) -> None:
    if job.started and job.finished:
        metrics.latency.labels(route="/api/v1/explain", quality=quality).observe(job.finished - job.created)
        metrics.queue_wait.observe(max(0.0, job.started - job.created))
    if job.state == DONE and isinstance(job.result, dict):
        for stage, sec in job.result.get("timings_s", {}).items():
            metrics.stage.labels(stage=stage).observe(sec)


def _job_view(state: AppState, job, with_result: bool = True) -> dict:
    """The queue's own status view (position, progress, wait and ETA), with the report when done."""
    view = state.queue.status(job.id) or {"job_id": job.id, "state": job.state}
    if with_result and job.state == DONE:
        view["report"] = job.result
    return view


def _explain_job(state: AppState, body: ExplainIn):
    """Validate cheaply now (method, settings, target), then return the job callable."""
    from heta_lite.engine import explain
    from heta_lite.methods import get_method
    from heta_lite.report import build_report
    from heta_lite.settings import HetaSettings
    from heta_lite.targets import TargetSpec, check_prompt

    check_prompt(body.prompt, max_chars=MAX_PROMPT_CHARS)
    get_method(body.method)
    opts = body.options.model_dump(exclude_none=True)
    settings = HetaSettings.preset(body.quality, **opts)
    t = body.target
    target = TargetSpec(position=t.position, generated=t.generated, max_new_tokens=t.max_new_tokens, chat=t.chat)
    lm = state.get(body.model, body.quant)
    cache, prompt, method = state.cache, body.prompt, body.method

    def job(control):
        return build_report(explain(lm, prompt, target, settings, method=method, control=control, cache=cache))

    return job
