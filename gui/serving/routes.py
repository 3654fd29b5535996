"""The user routes of the REST API: health, models, explain (sync or async), jobs."""
from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from heta_lite.errors import HetaError
from heta_lite.jobs import DONE, FINISHED, QueueFull

from ..state import AppState, ModelNotLoaded
from .errors import error, error_response, public_code
from .ratelimit import RateLimiter
from .schemas import MAX_PROMPT_CHARS, ExplainIn
from .telemetry import Metrics


def user_router(state: AppState, limiter: RateLimiter, metrics: Metrics, client_of) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/health")
    def health():
        ready = state.ready
        body = {"status": "ok" if ready else ("error" if state.load_error else "loading"), "model_loaded": ready,
                "model": state.lm.name if ready else state.model_name,
                "quant": state.lm.quantization if ready else state.quantization,
                "device": str(state.lm.device) if ready else None, "queue_depth": state.queue.depth,
                "running": state.queue.running,
                "models": [{k: m[k] for k in ("model", "quant", "state", "primary")} for m in state.models()]}
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/models")
    def models():
        from heta_lite.methods import method_names
        from heta_lite.models.catalogue import SHORT_NAMES

        return {"loaded": state.lm.describe() if state.ready else None, "models": state.models(),
                "available": [{"name": k, "source": v.location, "description": v.description}
                              for k, v in SHORT_NAMES.items()], "methods": method_names()}

    @router.post("/explain")
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
                return error_response(err)
        try:
            fn = _explain_job(state, body)
        except HetaError as err:
            return error_response(err)
        if limiter.active_jobs(client, _alive(state)) >= limiter.limits.concurrent_jobs:
            return error(429, "too_many_jobs", f"You already have {limiter.limits.concurrent_jobs} jobs running or "
                                               "queued; wait for one to finish.", retry_after=5)
        try:
            job = state.queue.submit(fn, kind="explain", owner=client)
        except QueueFull as err:
            return error_response(err)
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
        return error_response(job)

    @router.get("/jobs/{job_id}")
    def job_status(job_id: str):
        job = state.queue.get(job_id)
        if job is None:
            return error(404, "unknown_job", f"No job {job_id!r} (finished jobs are kept for a while, then dropped).")
        return _job_view(state, job)

    @router.delete("/jobs/{job_id}")
    def job_cancel(job_id: str):
        job = state.queue.get(job_id)
        if job is None:
            return error(404, "unknown_job", f"No job {job_id!r}.")
        state.queue.cancel(job_id)
        return _job_view(state, job, with_result=False)

    @router.get("/jobs/{job_id}/events")
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

    return router


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
    if isinstance(view.get("error"), dict):
        view["error"]["code"] = public_code(view["error"]["code"])
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
