"""The model panel: what is loaded, and (for admins) load / switch / reload / unload.

Who may change models: on a desktop install (the server bound to loopback) a user connected
directly (no proxy in between) owns the machine and needs no token; everyone else types the
admin token (HETA_LITE_ADMIN_TOKEN), checked by gui/admin.py exactly like the API's admin routes.
"""
from __future__ import annotations

from typing import Callable

from nicegui import ui

from heta_lite.errors import HetaError
from heta_lite.quantization.modes import QUANT_MODES

from ..admin import check_admin, direct_local
from ..state import AppState, public_name


def mode_key(name: str, quant: str) -> str:
    return f"{name}|{quant}"


def mode_label(name: str, quant: str, primary: bool = False) -> str:
    return f"{name} · {quant}" + (" (primary)" if primary else "")


def ready_options(state: AppState) -> dict[str, str]:
    """{'name|quant': label} of the models that can run now, the primary first. The keys stay on the
    server (a select sends only indices and labels); off a desktop install the labels show public
    names (a folder as 'local:<name>', never its server path)."""
    models = sorted((m for m in state.models() if m["state"] == "ready"), key=lambda m: not m["primary"])
    shown = (lambda name: name) if state.desktop else public_name
    return {mode_key(m["model"], m["quant"]): mode_label(shown(m["model"]), m["quant"], m["primary"])
            for m in models}


class ModelPanel:
    """An expansion with the loaded-model table and the admin controls."""

    def __init__(self, state: AppState, request, show_error: Callable[[str | None], None], runner) -> None:
        self.state, self.show_error = state, show_error
        self.owner = state.desktop and direct_local(request)
        with ui.expansion("Models and quantization", icon="tune").classes("w-full").mark("model-panel"):
            ui.label("Loaded models (each model × quantization mode is one entry; explanations run on the one "
                     "picked under 'Run on'). Quantized modes are smaller; docs/quantization.md says what they "
                     "cost.").classes("text-sm text-gray-600")
            self.table = ui.table(columns=[{"name": "model", "label": "model", "field": "model", "align": "left"},
                                           {"name": "quant", "label": "quantization", "field": "quant"},
                                           {"name": "state", "label": "state", "field": "state"},
                                           {"name": "primary", "label": "primary", "field": "primary"},
                                           {"name": "load", "label": "load s", "field": "load"},
                                           {"name": "error", "label": "", "field": "error", "align": "left"}],
                                  rows=[], row_key="key").props("dense flat").mark("model-table")
            with ui.row().classes("items-end gap-3"):
                # empty off the owner's desktop: Load then takes the configured model, whose path stays unshown
                self.name_in = ui.input("Model", value=state.model_name if self.owner else "",
                                        placeholder=public_name(state.model_name)).classes("w-64").mark("admin-model") \
                    .tooltip("short name (smollm2-135m, qwen2.5-3b, ...), hub id or local folder")
                self.quant_in = ui.select(list(QUANT_MODES), value="4bit-nf4", label="Quantization") \
                    .classes("w-36").mark("admin-quant")
                self.primary_in = ui.checkbox("make primary", value=False).mark("admin-primary")
                self.token_in = ui.input("Admin token", password=True).classes("w-44").mark("admin-token")
                self.token_in.set_visibility(not self.owner)
            with ui.row().classes("gap-2"):
                ui.button("Load", on_click=lambda: self.act("load")).props("outline").mark("admin-load")
                ui.button("Reload primary", on_click=lambda: self.act("reload")).props("outline") \
                    .mark("admin-reload")
                ui.button("Unload", on_click=lambda: self.act("unload")).props("outline color=negative") \
                    .mark("admin-unload")
            self.note = ui.label("You own this desktop install: no token needed." if self.owner else
                                 "Changing models needs the admin token (HETA_LITE_ADMIN_TOKEN on the server).") \
                .classes("text-xs text-gray-600").mark("admin-note")
        self.refresh()
        runner.every(1.0, self.refresh)

    def act(self, what: str) -> None:
        state = self.state
        if not self.owner:
            denied = check_admin(self.token_in.value or "")
            if denied is not None:
                self.show_error(str(denied))
                return
        try:
            if what == "load":
                slot = state.load((self.name_in.value or "").strip() or state.model_name, self.quant_in.value,
                                  primary=bool(self.primary_in.value))
                self.note.text = f"Loading {slot.name} ({slot.quant}) in the background…"
            elif what == "reload":
                slot = state.reload()
                self.note.text = f"Reloading {slot.name} ({slot.quant})…"
            else:
                state.unload((self.name_in.value or "").strip(), self.quant_in.value)
                self.note.text = "Unloaded."
            self.show_error(None)
        except HetaError as err:
            self.show_error(str(err))
        self.refresh()

    def refresh(self) -> None:
        """The table: the desktop owner sees the registry as the admin does (paths, load errors);
        anyone else its public view (public names; a failed load says only that it failed)."""
        models = self.state.models() if self.owner else self.state.public_models()
        rows = [{"key": mode_key(m["model"], m["quant"]), "model": m["model"], "quant": m["quant"],
                 "state": m["state"], "primary": "yes" if m["primary"] else "",
                 "load": "" if m["load_seconds"] is None else f"{m['load_seconds']:.1f}", "error": m["error"] or ""}
                for m in models]
        if rows != self.table.rows:
            self.table.rows = rows
            self.table.update()
