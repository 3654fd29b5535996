"""The user routes of the REST API: health, models, explain (sync or async), batches, jobs.

A batch (POST /explain/batch) is one job that explains its items in order: one job for the
client's cap, one rate-limit token per item, each item its report or its own error
(docs/serving.md, "Batches").

Jobs belong to their submitter: the async 202 answer carries `job_token`, a per-job secret, and
GET/DELETE /api/v1/jobs/{id} and its event stream need it in the `X-Job-Token` header (without
it, or with a wrong one, the job is as unknown as a job that never existed: 404). A sync request
whose client goes away cancels its job, so no worker computes for nobody. Event streams are
capped (MAX_STREAMS in all, MAX_STREAMS_PER_CLIENT each). The page's jobs are the same queue's:
an explanation the page started serialises to the same report; the page's other jobs (tokens,
comparisons, side views) are refused with 409 `not_an_api_job`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from heta_lite.errors import ClientLimited, HetaError, ModelNotLoaded, QueueFull
from heta_lite.jobs import DONE, FINISHED

from ..state import AppState, public_name
from .errors import error, error_response, facts_of
from .explain_jobs import BATCH_KIND, _api_viewable, _batch_job, _explain_job, _report_of
from .ratelimit import RateLimiter
from .schemas import ExplainBatchIn, ExplainIn
from .telemetry import JOB_TEXT, Metrics

log = logging.getLogger(__name__)


JOB_TOKEN_HEADER = "x-job-token"
MAX_STREAMS = 32  # open event streams in all (each holds a connection and polls its job)
MAX_STREAMS_PER_CLIENT = 4


class StreamSlots:
    """Counts open event streams, in all and per client."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total, self.per_client = total, per_client
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str) -> str | None:
        """None when a slot was taken; else which cap refused it: "total" or "client"."""
        with self._lock:
            if sum(self._open.values()) >= self.total:
                return "total"
            if self._open.get(client, 0) >= self.per_client:
                return "client"
            self._open[client] = self._open.get(client, 0) + 1
            return None

    def release(self, client: str) -> None:
        with self._lock:
            n = self._open.get(client, 0) - 1
            if n > 0:
                self._open[client] = n
            else:
                self._open.pop(client, None)

    @property
    def open(self) -> int:
        with self._lock:
            return sum(self._open.values())


def user_router(state: AppState, limiter: RateLimiter, metrics: Metrics, client_of,
                max_streams: int | None = None, max_streams_per_client: int | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    state.limiter, state.client_of = limiter, client_of  # the page's jobs take the same limits (gui/page/runner.py)
    streams = StreamSlots(MAX_STREAMS if max_streams is None else max_streams,
                          MAX_STREAMS_PER_CLIENT if max_streams_per_client is None else max_streams_per_client)
    router.streams = streams  # type: ignore[attr-defined]  # tests read how many are open

    def owned_job(request: Request, job_id: str):
        """The job if the request carries its token; else None (unknown and not-yours look alike)."""
        return state.queue.owned(job_id, request.headers.get(JOB_TOKEN_HEADER))

    def unknown(job_id: str) -> JSONResponse:
        return error(404, "unknown_job", f"No job {job_id[:64]!r} for this X-Job-Token (send the job_token of the "
                                         "202 answer; finished jobs are kept for a while, then dropped).")

    @router.get("/health")
    def health():  # public: model names as public_name, no load error (the admin view has them)
        ready = state.ready
        body = {"status": "ok" if ready else ("error" if state.load_error else "loading"), "model_loaded": ready,
                "model": public_name(state.lm.name if ready else state.model_name),
                "quant": state.lm.quantization if ready else state.quantization,
                "device": str(state.lm.device) if ready else None, "queue_depth": state.queue.depth,
                "running": state.queue.running,
                "models": [{k: m[k] for k in ("model", "quant", "state", "primary")} for m in state.public_models()]}
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/models")
    def models():
        from heta_lite.methods import method_names
        from heta_lite.models.catalogue import SHORT_NAMES

        return {"loaded": state.lm.describe() if state.ready else None, "models": state.public_models(),
                "available": [{"name": k, "source": public_name(v.location), "description": v.description}
                              for k, v in SHORT_NAMES.items()], "methods": method_names()}

    def admit(client: str, body, cost: int) -> JSONResponse | None:
        """The checks before any validation: the client's rate (`cost` tokens: one per explanation)
        and, for the default model, that it is ready. None: go ahead; else the refusal."""
        wait = limiter.take(client, cost)
        if wait > 0:
            return error_response(ClientLimited.rate(wait))
        if body.model is None and body.quant is None and not state.ready:
            try:  # answer before any validation; the registry's state picks loading (503 + Retry-After) or failed
                state.get()
            except ModelNotLoaded as err:
                return error_response(err)
        return None

    async def queue_and_answer(request: Request, client: str, fn, texts: tuple[str, ...], kind: str, body,
                               route: str):
        """One job for `client`: the concurrent-job cap, the queue, then 202 (async) or the result
        (sync: the wait, and a client that hangs up cancels the job)."""
        if limiter.active_jobs(client, _alive(state)) >= limiter.limits.concurrent_jobs:
            return error_response(ClientLimited.jobs(limiter.limits.concurrent_jobs))
        try:
            # the prompts stay out of the logs until the job ends (an async job outlives this request)
            job = state.submit(fn, texts=texts, kind=kind, owner=client, surface="api")
        except QueueFull as err:
            return error_response(err)
        limiter.start_job(client, job.id, _alive(state))
        metrics.queue_depth.set(state.queue.depth)
        if body.run_async:
            return JSONResponse({"job_id": job.id, "job_token": job.token, "state": job.state,
                                 "queue_position": state.queue.position(job)}, status_code=202)
        if not await _finished_or_abandoned(request, job):
            state.queue.cancel(job.id)  # nobody waits for it: free the worker (it stops at its next safe point)
            JOB_TEXT.prune()  # a job cancelled while queued never runs: its prompt is forgotten here
            return error(499, "client_closed_request", "The client went away; its job was cancelled.")
        _observe(metrics, job, body.quality, route)
        if job.state == DONE:
            return JSONResponse(job.result)
        return error_response(job)

    async def run_job(request: Request, body, cost: int, build, texts: tuple[str, ...], kind: str, route: str):
        """Admit (rate limit: `cost` tokens; model ready), validate and build the job, queue it, answer."""
        client = client_of(request)
        refused = admit(client, body, cost)
        if refused is not None:
            return refused
        try:
            fn = build(state, body)
        except HetaError as err:
            return error_response(err)
        return await queue_and_answer(request, client, fn, texts, kind, body, route)

    @router.post("/explain")
    async def explain_route(body: ExplainIn, request: Request):
        return await run_job(request, body, 1, _explain_job, body.texts, "explain", "/api/v1/explain")

    @router.post("/explain/batch")
    async def explain_batch_route(body: ExplainBatchIn, request: Request):
        # one rate-limit token per item; the request guard registered every item's prompt as secret
        prompts = tuple(item.prompt for item in body.items)
        return await run_job(request, body, len(body.items), _batch_job, prompts, BATCH_KIND, "/api/v1/explain/batch")

    @router.get("/jobs/{job_id}")
    def job_status(job_id: str, request: Request):
        job = owned_job(request, job_id)
        if job is None:
            return unknown(job_id)
        if not _api_viewable(job):
            return _not_an_api_job(job)
        return _job_view(state, job)

    @router.delete("/jobs/{job_id}")
    def job_cancel(job_id: str, request: Request):
        job = owned_job(request, job_id)
        if job is None:
            return unknown(job_id)
        state.queue.cancel(job_id)
        JOB_TEXT.prune()
        return _job_view(state, job, with_result=False)

    @router.get("/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request):
        job = owned_job(request, job_id)
        if job is None:
            return unknown(job_id)
        client = client_of(request)
        refused = streams.acquire(client)
        if refused == "total":
            return error(503, "too_many_streams", f"The server already serves {streams.total} job streams; poll "
                                                  "GET /api/v1/jobs/{id} instead, or try again later.", retry_after=10)
        if refused == "client":
            return error(429, "too_many_streams", f"You already follow {streams.per_client} job streams; close one "
                                                  "first (or poll GET /api/v1/jobs/{id}).", retry_after=10)
        released = threading.Event()

        def release() -> None:  # idempotent: the stream's end and the response's background both call it
            if not released.is_set():
                released.set()
                streams.release(client)

        async def stream():
            try:
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
            finally:
                release()

        return StreamingResponse(stream(), media_type="text/event-stream", background=BackgroundTask(release))

    return router


async def _finished_or_abandoned(request: Request, job) -> bool:
    """Wait for `job` to finish (True), or for the client to disconnect first (False). The wait
    reads the request's receive channel, which after the body only ever says `http.disconnect`."""

    async def disconnected() -> bool:
        try:
            while True:
                if (await request.receive())["type"] == "http.disconnect":
                    return True
        except Exception:  # noqa: BLE001 - an odd server: keep waiting for the job, just stop watching
            return False

    watcher = asyncio.ensure_future(disconnected())
    try:
        while job.state not in FINISHED:
            if watcher.done() and not watcher.cancelled() and watcher.result():
                return job.state in FINISHED
            await asyncio.sleep(0.05)
        return True
    finally:
        watcher.cancel()


def _not_an_api_job(job) -> JSONResponse:
    return error(409, "not_an_api_job", f"This is the page's {job.kind!r} job; its result is shown on the page "
                                        "that started it, not through the API.")


def _alive(state: AppState):
    return lambda job_id: (state.queue.get(job_id) is not None and state.queue.get(job_id).state not in FINISHED)


def _observe(metrics: Metrics, job, quality: str, route: str = "/api/v1/explain") -> None:
    if job.started and job.finished:
        metrics.latency.labels(route=route, quality=quality).observe(job.finished - job.created)
        metrics.queue_wait.observe(max(0.0, job.started - job.created))
    if job.state == DONE and isinstance(job.result, dict):
        reports = [it["report"] for it in job.result["items"] if "report" in it] if job.kind == BATCH_KIND \
            else [job.result]
        for report in reports:
            for stage, sec in report.get("timings_s", {}).items():
                metrics.stage.labels(stage=stage).observe(sec)


def _job_view(state: AppState, job, with_result: bool = True) -> dict:
    """The queue's own status view (position, progress, wait and ETA), with the report when done."""
    view = state.queue.status(job.id) or {"job_id": job.id, "state": job.state}
    if isinstance(view.get("error"), dict):
        view["error"]["code"] = facts_of(job).code
    if with_result and job.state == DONE:
        if job.kind == BATCH_KIND:
            view["result"] = job.result  # {"items": [...], "n_ok", "n_failed"}: one report per item
        else:
            view["report"] = _report_of(job)
    return view
