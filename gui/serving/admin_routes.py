"""The admin routes: cache, and loading / reloading / unloading models (X-Admin-Token)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from heta_lite.errors import HetaError, InputError, ModelNotLoaded

from ..admin import check_admin
from ..state import AppState
from .errors import error, error_response
from .schemas import AdminModelIn, AdminUnloadIn

log = logging.getLogger("heta_lite.api")


def admin_router(state: AppState) -> APIRouter:
    router = APIRouter(prefix="/api/v1/admin")

    def admin_denied(request: Request) -> JSONResponse | None:
        denied = check_admin(request.headers.get("x-admin-token", ""))
        return None if denied is None else error_response(denied)

    @router.post("/clear-cache")
    def clear_cache(request: Request):
        if (denied := admin_denied(request)) is not None:
            return denied
        if state.cache is not None:
            state.cache.clear()
        return {"cleared": state.cache is not None}

    @router.get("/models")
    def admin_models(request: Request):
        if (denied := admin_denied(request)) is not None:
            return denied
        return {"models": state.models(), "max_models": state.max_models}

    @router.post("/models")
    def admin_load(body: AdminModelIn, request: Request):
        """Load a model/mode in the background (202); with primary, switch requests to it."""
        if (denied := admin_denied(request)) is not None:
            return denied
        try:
            slot = state.load(body.model, body.quant, primary=body.primary)
        except HetaError as err:
            return error_response(err)
        log.info("admin load", extra={"fields": {"quant": slot.quant, "primary": body.primary}})
        return JSONResponse({"model": slot.describe(primary=body.primary), "models": state.models()}, status_code=202)

    @router.post("/models/reload")
    def admin_reload(request: Request):
        if (denied := admin_denied(request)) is not None:
            return denied
        try:
            slot = state.reload()
        except HetaError as err:
            return error_response(err)
        return JSONResponse({"model": slot.describe(primary=True)}, status_code=202)

    @router.delete("/models")
    def admin_unload(body: AdminUnloadIn, request: Request):
        if (denied := admin_denied(request)) is not None:
            return denied
        try:
            state.unload(body.model, body.quant)
        except ModelNotLoaded as err:
            return error(404, "model_not_loaded", str(err))
        except InputError as err:
            return error_response(err)
        except HetaError as err:
            return error(409, "primary_model", str(err))
        return {"models": state.models()}

    return router
