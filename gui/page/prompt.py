"""The prompt card: prompt, examples, quality/method/'Run on'/chat/new tokens, Generate, the
advanced settings (frame, gate) and the per-quality time estimate."""
from __future__ import annotations

from typing import Callable

from nicegui import ui

from heta_lite.errors import HetaError
from heta_lite.settings import GATES, QUALITIES, HetaSettings
from heta_lite.targets import TargetSpec

from ..state import AppState
from .models import ready_options
from .runner import JobRunner
from .state import PageState

# (prompt, chat template on?): completions read best without the chat template, questions with it
EXAMPLES = [
    ("The capital of France is", False),
    ("Alice gave Bob her umbrella because it was raining. Who was getting wet?", True),
    ("The chemical symbol for gold is", False),
    ("def fibonacci(n):\n    if n < 2:\n        return", False),
]


class PromptPanel:
    def __init__(self, state: AppState, ps: PageState, runner: JobRunner,
                 show_error: Callable[[str | None], None]) -> None:
        self.state, self.ps, self.runner, self.show_error = state, ps, runner, show_error
        self.on_tokens: Callable = lambda ctx: None  # the generated context goes to the token picker
        from heta_lite.methods import method_names

        with ui.card().classes("w-full"):
            self.prompt = ui.textarea("Prompt", placeholder="Type or paste a prompt, or pick an example below") \
                .classes("w-full").props("outlined autogrow id=prompt").mark("prompt")
            with ui.row().classes("gap-1 items-center"):
                ui.label("Examples:").classes("text-sm text-gray-600")
                for ex, ex_chat in EXAMPLES:
                    ui.button(ex.split("\n")[0][:38] + ("…" if len(ex) > 38 else ""),
                              on_click=lambda ex=ex, ex_chat=ex_chat: self.use_example(ex, ex_chat)) \
                        .props("outline rounded dense no-caps size=sm color=primary").classes("px-2")
            with ui.row().classes("items-center gap-4"):
                self.quality = ui.select({q: q for q in QUALITIES}, value=state.default_quality, label="Quality") \
                    .classes("w-32").props("id=quality")
                self.method = ui.select(method_names(), value="heta", label="Method").classes("w-40").mark("method") \
                    .tooltip("heta: Hessian-enhanced token attribution (M gate x (S curvature + I information)); "
                             "the others are baselines for comparison")
                self.run_on = ui.select(ready_options(state), label="Run on").classes("w-56").mark("run-on") \
                    .tooltip("which loaded model / quantization mode explains; load more under 'Models and "
                             "quantization'")
                self.chat = ui.switch("Chat template", value=False) \
                    .tooltip("On: the prompt is sent as a user message to the assistant (good for questions). "
                             "Off: the model simply continues the text.")
                self.max_new = ui.number("New tokens", value=12, min=1, max=64, step=1).classes("w-28") \
                    .mark("new-tokens")
                ui.button("Generate", on_click=self.start_generate).props("id=generate").mark("generate")
            with ui.expansion("Advanced settings", icon="tune").classes("w-full").props("dense"):
                with ui.row().classes("items-center gap-4"):
                    self.frame_sel = ui.select({"auto": "auto (frame tokens first)", "none": "none (authors' setting)"},
                                               value=HetaSettings.frame, label="Frame").classes("w-56") \
                        .mark("frame") \
                        .tooltip("auto: the model sees a frame token (chat template opening, BOS or its document "
                                 "separator) before your text, so your first word is not the attention sink; "
                                 "none: nothing prepended, for comparison with the paper")
                    self.gate_sel = ui.select({g: g for g in GATES}, value=HetaSettings.gate, label="Gate") \
                        .classes("w-40").mark("gate") \
                        .tooltip("rollout of the gate M: last-quarter (the default, chosen on the dev half of the "
                                 "pre-registered evaluation), full (all layers), norm-mixing (mixing by value norms)")
                    self.long_sel = ui.select({"window": "window (explain the last part)", "refuse": "refuse"},
                                              value="window", label="Prompts over the token limit").classes("w-64") \
                        .mark("long-input").tooltip("window: the model sees the frame and the last tokens that fit; "
                                                    "they are explained as usual and each earlier chunk gets one "
                                                    "summary effect. refuse: a longer prompt is refused.")
            self.estimate = ui.label("Expected time per quality appears after Generate (a rough estimate, measured "
                                     "on this machine for your prompt's length).").classes("text-sm text-gray-600") \
                .mark("estimate")

    def settings(self) -> HetaSettings:
        return HetaSettings.preset(self.quality.value, frame=self.frame_sel.value, gate=self.gate_sel.value,
                                   long_input=self.long_sel.value)

    def chat_on(self, lm) -> bool:
        return bool(self.chat.value) if getattr(lm.tokenizer, "chat_template", None) else False

    def lm_now(self):
        """The model picked under 'Run on' (the primary if none); ModelNotLoaded if it went away."""
        return self.state.get(*self.run_on.value.split("|", 1)) if self.run_on.value else self.state.get()

    def use_example(self, text: str, use_chat: bool) -> None:
        self.prompt.set_value(text)
        self.chat.set_value(use_chat)

    def refresh_run_on(self) -> None:
        opts = ready_options(self.state)
        if self.run_on.options != opts:  # models loaded, unloaded or switched meanwhile
            self.run_on.options = opts
            if self.run_on.value not in opts:
                self.run_on.value = next(iter(opts), None)
            self.run_on.update()

    def start_generate(self) -> None:
        state, show_error = self.state, self.show_error
        show_error(None)
        if not state.ready:
            show_error(state.public_load_error or "The model is still loading; try again in a moment.")
            return
        text = self.prompt.value or ""
        if not text.strip():
            show_error("The prompt is empty; type some text or click an example.")
            return
        n_new = self.max_new.value
        if n_new is None or not float(n_new).is_integer() or not 1 <= int(n_new) <= 64:
            show_error(f"New tokens must be a whole number from 1 to 64, got {n_new}.")
            return
        self.ps.estimate_key = None
        from heta_lite.engine import make_context

        try:
            lm = self.lm_now()
        except HetaError as err:
            show_error(str(err))
            return
        self.ps.lm = lm
        spec = TargetSpec(generated=0, max_new_tokens=int(n_new), chat=self.chat_on(lm))
        s, cache = self.settings(), state.cache

        def job(control):
            control.step("generating", 0, 1)
            return make_context(lm, text, spec, s, cache)

        self.runner.submit(job, "generate", self.on_tokens, texts=(text,))

    def start_estimate(self, n: int, n_scored: int) -> None:
        """Expected seconds per preset for this length, from a one-time calibration on this machine."""
        from heta_lite.methods.heta.cost import calibrate, estimate_seconds_long

        lm = self.ps.page_lm(self.state)
        plan = getattr(self.ps.ctx, "long_input", None)  # a windowed long prompt: its chunk forwards count too
        if self.ps.estimate_key == (n, n_scored):
            return
        self.ps.estimate_key = (n, n_scored)

        def job(control):
            cal = calibrate(lm, n, control)
            return {q: estimate_seconds_long(cal, n, n_scored, HetaSettings.preset(q), plan)["total"]
                    for q in QUALITIES}

        try:
            self.runner.submit_side("estimate", job, "estimate", self.show_estimate, show_errors=False)
        except HetaError:
            self.estimate.text = ""

    def show_estimate(self, est: dict) -> None:
        self.ps.estimates = est
        n = (self.ps.estimate_key or (0, 0))[0]
        self.estimate.text = "Expected time here for {} tokens (rough estimate): ".format(n) + " · ".join(
            (f"{q} <1 s" if est[q] < 1 else f"{q} ~{est[q]:.0f} s") if est[q] < 120 else f"{q} ~{est[q] / 60:.0f} min"
            for q in QUALITIES)
