"""The REST API (FastAPI routers inside the NiceGUI app; OpenAPI at /docs), on the same job
queue as the GUI.

Errors are JSON `{"error": {"code", "message", "field"?}}` with a stable code, from one mapping
(errors.py). Users choose among loaded models (`model`, `quant`); loading, switching, reloading
and unloading models are admin actions (token in HETA_LITE_ADMIN_TOKEN). Logs and metrics carry
sizes, timings and outcomes, never prompt or token text.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from ..state import AppState
from . import middleware
from .admin_routes import admin_router
from .errors import error
from .ratelimit import Limits, RateLimiter, client_id
from .routes import user_router
from .telemetry import Metrics


def register_api(app: FastAPI, state: AppState, limits: Limits | None = None, metrics: Metrics | None = None,
                 limiter: RateLimiter | None = None) -> None:
    """`limiter` (optional) replaces the one built from `limits`: tests inject one with a fake clock."""
    limiter = limiter or RateLimiter(limits or Limits())
    metrics = metrics or Metrics()
    state.metrics = metrics  # type: ignore[attr-defined]

    def client_of(request: Request) -> str:
        peer = request.client.host if request.client else None
        return client_id(peer, request.headers.get("x-forwarded-for"), limiter.limits.trusted_proxies)

    middleware.install(app, metrics, client_of)
    app.include_router(user_router(state, limiter, metrics, client_of))
    app.include_router(admin_router(state))

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    def api_not_found(rest: str):
        return error(404, "not_found", "No such API route; see /docs for the API.")

    @app.get("/metrics", include_in_schema=False)
    def metrics_route():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from heta_lite.profiling import snapshot

        snap = snapshot()
        metrics.rss.set(snap.rss_bytes)
        metrics.gpu_used.set(snap.gpu_used_bytes or 0)
        metrics.queue_depth.set(state.queue.depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
