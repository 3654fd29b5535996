"""The page's model panel: what is loaded, and (for admins) load / switch / reload / unload.

Who may change models: on a desktop install (the server bound to loopback) a user connected
directly (no proxy in between) owns the machine and needs no token; everyone else types the
admin token (HETA_LITE_ADMIN_TOKEN), checked exactly like the API's admin routes.
"""
from __future__ import annotations

import ipaddress
from typing import Callable

from nicegui import ui

from heta_lite.errors import HetaError
from quant.modes import QUANT_MODES

from .state import AppState


def direct_local(request) -> bool:
    """True when the page request came straight from this machine (not through a proxy)."""
    if request is None or request.client is None or request.headers.get("x-forwarded-for"):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return request.client.host in ("localhost", "testclient")


def mode_key(name: str, quant: str) -> str:
    return f"{name}|{quant}"


def mode_label(name: str, quant: str, primary: bool = False) -> str:
    return f"{name} · {quant}" + (" (primary)" if primary else "")


def ready_options(state: AppState) -> dict[str, str]:
    """{'name|quant': label} of the models that can run now, the primary first."""
    models = sorted((m for m in state.models() if m["state"] == "ready"), key=lambda m: not m["primary"])
    return {mode_key(m["model"], m["quant"]): mode_label(m["model"], m["quant"], m["primary"]) for m in models}


def build_model_panel(state: AppState, request, show_error: Callable[[str | None], None]) -> None:
    """An expansion with the loaded-model table and the admin controls."""
    from .api import admin_check

    owner = state.desktop and direct_local(request)
    with ui.expansion("Models and quantization", icon="tune").classes("w-full").mark("model-panel"):
        ui.label("Loaded models (each model × quantization mode is one entry; explanations run on the one picked "
                 "under 'Run on'). Quantized modes are smaller; docs/quantization.md says what they cost.") \
            .classes("text-sm text-gray-600")
        table = ui.table(columns=[{"name": "model", "label": "model", "field": "model", "align": "left"},
                                  {"name": "quant", "label": "quantization", "field": "quant"},
                                  {"name": "state", "label": "state", "field": "state"},
                                  {"name": "primary", "label": "primary", "field": "primary"},
                                  {"name": "load", "label": "load s", "field": "load"},
                                  {"name": "error", "label": "", "field": "error", "align": "left"}],
                         rows=[], row_key="key").props("dense flat").mark("model-table")
        with ui.row().classes("items-end gap-3"):
            name_in = ui.input("Model", value=state.model_name).classes("w-64").mark("admin-model") \
                .tooltip("short name (smollm2-135m, qwen2.5-3b, ...), hub id or local folder")
            quant_in = ui.select(list(QUANT_MODES), value="4bit-nf4", label="Quantization").classes("w-36") \
                .mark("admin-quant")
            primary_in = ui.checkbox("make primary", value=False).mark("admin-primary")
            token_in = ui.input("Admin token", password=True).classes("w-44").mark("admin-token")
            token_in.set_visibility(not owner)
        with ui.row().classes("gap-2"):
            ui.button("Load", on_click=lambda: act("load")).props("outline").mark("admin-load")
            ui.button("Reload primary", on_click=lambda: act("reload")).props("outline").mark("admin-reload")
            ui.button("Unload", on_click=lambda: act("unload")).props("outline color=negative").mark("admin-unload")
        note = ui.label("You own this desktop install: no token needed." if owner else
                        "Changing models needs the admin token (HETA_LITE_ADMIN_TOKEN on the server).") \
            .classes("text-xs text-gray-600").mark("admin-note")

    def act(what: str) -> None:
        if not owner:
            denied = admin_check(token_in.value or "", state)
            if denied is not None:
                import json

                show_error(json.loads(denied.body)["error"]["message"])
                return
        try:
            if what == "load":
                slot = state.load((name_in.value or "").strip() or state.model_name, quant_in.value,
                                  primary=bool(primary_in.value))
                note.text = f"Loading {slot.name} ({slot.quant}) in the background…"
            elif what == "reload":
                slot = state.reload()
                note.text = f"Reloading {slot.name} ({slot.quant})…"
            else:
                state.unload((name_in.value or "").strip(), quant_in.value)
                note.text = "Unloaded."
            show_error(None)
        except HetaError as err:
            show_error(str(err))
        refresh()

    def refresh() -> None:
        rows = [{"key": mode_key(m["model"], m["quant"]), "model": m["model"], "quant": m["quant"],
                 "state": m["state"], "primary": "yes" if m["primary"] else "",
                 "load": "" if m["load_seconds"] is None else f"{m['load_seconds']:.1f}", "error": m["error"] or ""}
                for m in state.models()]
        if rows != table.rows:
            table.rows = rows
            table.update()

    refresh()
    ui.timer(1.0, refresh)
