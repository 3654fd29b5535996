"""Explain one prediction: build the context, run a registered method, collect statistics.

    lm = load_model("smollm2-135m")                    # once
    exp = explain(lm, "The capital of France is")       # many times
    exp.top_tokens(5)

The method sees only embeddings, ids and the scored mask; everything a report shows
(target probability, alternatives, percentiles, timings, memory) is computed here, the same
way for every method. The engine knows no method's internals: each method plans its own run
(`AttributionMethod.plan`: time budget, memory) and says whether it differentiates.
"""
from __future__ import annotations

import contextlib
import functools
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from . import __version__
from .anomaly import AnomalyReport, anomaly_flags
from .cache import ModelIdentity, cache_key
from .control import JobControl
from .conversation import Conversation
from .errors import HetaError, InputError, ResourceLimitError
from .faithfulness.check import FaithfulnessCheck, faithfulness_check
from .long_input import check_memory as check_long_input_memory, chunk_effects
from .methods import AttributionResult, MethodInput, get_method
from .methods.registry import configure
from .models.loader import LoadedModel, attention_implementation
from .profiling import PeakMemory, StageTimer
from .quantization.derivatives import resolve_derivative_path
from .ranking import percentiles, ranks
from .risk import failure_risk, target_entropy_margin
from .risk import features as risk_features
from .settings import HetaSettings
from .targets import Context, TargetSpec, build_context
from .tokens import raw_piece_display


@dataclass
class Alternative:
    id: int
    text: str
    prob: float


@dataclass
class TargetStats:
    prob: float  # p(y) at p
    logprob: float
    rank: int  # 1 = the model's top choice
    alternatives: list[Alternative]  # top-5 at p


@dataclass
class Explanation:
    """Everything one explanation produced; `heta_lite.report.build_report` turns it into JSON."""

    model: dict[str, Any]
    method: str
    settings: HetaSettings
    context: Context
    target: TargetStats
    result: AttributionResult
    normalised: np.ndarray  # scores / sum over scored tokens
    percentile: np.ndarray  # NaN for unscored
    rank: np.ndarray  # 1 = most influential, 0 for unscored
    timings: dict[str, float]
    memory: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    derivatives: dict[str, Any] | None = None  # quantized models: where gradients/HVPs were taken, and why
    frame: dict[str, Any] = field(default_factory=dict)  # the frame and its two diagnostics (frame_report)
    check: FaithfulnessCheck | None = None  # top-k vs random deletion, when settings.check
    anomalies: AnomalyReport | None = None  # flags for the input and the run (heta_lite/anomaly.py)
    risk: dict[str, Any] | None = None  # p(the answer is wrong) and its features (heta_lite/risk.py)
    long_input: dict[str, Any] | None = None  # a windowed long prompt: window, chunk effects (long_input.py)
    created: float = field(default_factory=time.time)
    version: str = __version__

    @property
    def scores(self) -> np.ndarray:
        return self.result.scores

    def top_tokens(self, k: int = 10) -> list[tuple[int, str, float]]:
        """(index, readable text, normalised score) of the k most influential tokens."""
        order = [i for i in np.argsort(self.rank) if self.rank[i] > 0][:k]
        toks = self.context.context_tokens
        return [(int(i), toks[i].display, float(self.normalised[i])) for i in order]


def target_stats(lm: LoadedModel, logits: torch.Tensor, target_id: int, top: int = 5) -> TargetStats:
    logp = torch.log_softmax(logits.double(), dim=-1)
    probs = logp.exp()
    p_y = float(probs[target_id])
    rank = int((probs > probs[target_id]).sum()) + 1
    top_p, top_i = probs.topk(top)
    alts = [Alternative(int(i), raw_piece_display(lm.tokenizer, int(i)) if lm.tokenizer else str(int(i)), float(p))
            for p, i in zip(top_p, top_i)]
    return TargetStats(prob=p_y, logprob=float(logp[target_id]), rank=rank, alternatives=alts)


def embed(lm: LoadedModel, ids: list[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    input_ids = torch.as_tensor(ids, dtype=torch.long, device=lm.device)
    with torch.no_grad():
        X = lm.model.get_input_embeddings()(input_ids).detach()
    return input_ids, X


@torch.no_grad()
def logits_at_last(lm: LoadedModel, X: torch.Tensor) -> torch.Tensor:
    with attention_implementation(lm.model, "sdpa"):
        return lm.model(inputs_embeds=X[None], use_cache=False, logits_to_keep=1).logits[0, -1]


def report_key(lm: LoadedModel, ctx: Context, settings: HetaSettings, method: str) -> tuple:
    """Everything that determines an explanation's numbers (and the report's text fields)."""
    return cache_key(ModelIdentity.of(lm), "report", method=method, settings=settings.to_dict(),
                     ids=ctx.ids[: ctx.target_pos + 1], target_pos=ctx.target_pos, prompt=ctx.prompt, chat=ctx.chat,
                     mode=ctx.mode, prompt_len=ctx.prompt_len, frame=ctx.frame.to_dict(),
                     conversation=ctx.conversation.key() if ctx.conversation is not None else None)


def plan_settings(lm: LoadedModel, ctx: Context, settings: HetaSettings, memory_limit_bytes: int | None = None,
                  method: str = "heta") -> tuple[HetaSettings, list[str]]:
    """The settings `method` runs with on this context, and the report's notes: the method plans its
    own run (HETA: a time budget picks a preset, batches fit the memory limit; a baseline keeps its
    settings), so no method is planned with another's cost model."""
    return get_method(method).plan(lm, ctx.target_pos, sum(ctx.scored), settings, memory_limit_bytes)


def explain_context(lm: LoadedModel, ctx: Context, settings: HetaSettings, method: str = "heta",
                    control: JobControl | None = None, timer: StageTimer | None = None,
                    cache=None, memory_limit_bytes: int | None = None) -> Explanation:
    """Run `method` on an already-built context (e.g. another target of the same generation).
    With a HetaCache, a finished explanation of the same inputs is returned without recomputing."""
    control = control or JobControl()
    timer = timer or StageTimer()
    if not any(ctx.scored):
        raise InputError("The context before the target has no scorable tokens (only special or chat-template "
                         "tokens); pick a later target.", "target")
    if ctx.frame.setting != settings.frame:
        raise InputError(f"The context was built with frame '{ctx.frame.setting}' but the settings ask for "
                         f"'{settings.frame}'; build (generate) it again with the same frame.", "frame")
    settings = configure(method, settings)  # the method's own knobs, defaults filled: in report and key
    settings, notes = plan_settings(lm, ctx, settings, memory_limit_bytes, method)
    if ctx.long_input is not None:  # the chunk forwards must fit too (refused with what to do)
        check_long_input_memory(lm, ctx.long_input, ctx.target_pos, memory_limit_bytes)
    if cache is not None:
        cached = cache.get(report_key(lm, ctx, settings, method))
        if isinstance(cached, Explanation):
            cached.timings = {**cached.timings, "cache_hit": 1.0}
            return cached
    exp = _explain_uncached(lm, ctx, settings, method, control, timer, cache)
    exp.notes.extend(notes)
    if cache is not None:
        cache.set(report_key(lm, ctx, settings, method), exp)
    return exp


def _explain_uncached(lm: LoadedModel, ctx: Context, settings: HetaSettings, method: str, control: JobControl,
                      timer: StageTimer, cache) -> Explanation:
    if ctx.target_pos > settings.max_tokens:
        raise InputError(f"The context is {ctx.target_pos} tokens; the limit is {settings.max_tokens} tokens.", "prompt")
    impl = get_method(method)
    derivatives = None
    grad_context = contextlib.nullcontext
    if lm.quantization != "none" and impl.needs_gradients(settings):
        with timer.stage("derivative_check"):  # measured once per loaded model, then cached
            path = resolve_derivative_path(lm, settings.derivatives)
        derivatives = path.to_dict()
        grad_context = functools.partial(path.context, lm.model)
    t0 = time.perf_counter()
    with PeakMemory() as peak:
        input_ids, X = embed(lm, ctx.input_ids)
        scored = torch.tensor(ctx.scored, device=lm.device)
        inp = MethodInput(lm=lm, input_ids=input_ids, X=X, target_id=ctx.target_id, scored=scored,
                          settings=settings, control=control, timer=timer, cache=cache, grad_context=grad_context)
        try:
            result = impl.attribute(inp)
        except torch.OutOfMemoryError as err:
            traceback.clear_frames(err.__traceback__)
            raise ResourceLimitError(f"Out of memory while explaining {len(ctx.input_ids)} tokens; "
                                     "use the 'fast' quality, a smaller batch or a shorter prompt.") from None
        except HetaError as err:  # cancelled / timed out: drop the frames' tensors (graphs, probes) now
            traceback.clear_frames(err.__traceback__)
            raise
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        logits = result.logits if result.logits is not None else logits_at_last(lm, X)
        stats = target_stats(lm, logits, ctx.target_id)
        scored_np = np.asarray(ctx.scored)
        scores = np.where(scored_np, result.scores, 0.0)
        result.scores = scores
        check = None
        if settings.check and len(ctx.input_ids) > 1:
            with timer.stage("faithfulness_check"):
                control.step("faithfulness check", 0, 1)
                check = faithfulness_check(lm, X, ctx.target_id, scores, scored_np, stats.prob, seed=settings.seed)
        with timer.stage("anomaly_flags"):
            anomalies = anomaly_flags(lm, list(ctx.input_ids), stats.prob)
        long_result = None
        if ctx.long_input is not None:  # the earlier text's chunks: one summary effect each
            with timer.stage("long_input_chunks"):
                long_result = chunk_effects(lm, ctx, control, method).to_dict()
    total = scores.sum()
    normalised = scores / total if total > 0 else np.where(scored_np, 1.0 / scored_np.sum(), 0.0)
    entropy, margin = target_entropy_margin(logits)
    risk = failure_risk(lm.name, risk_features(
        entropy, margin, anomalies.values["lens_settle"], [t.text for t in ctx.context_tokens], normalised,
        scored_np, ctx.first_content_index, check.passed if check is not None else None), stats.rank)
    timings = dict(timer.seconds)
    timings["attribution_total"] = time.perf_counter() - t0
    return Explanation(model=lm.describe(), method=method, settings=settings, context=ctx, target=stats,
                       result=result, normalised=normalised, percentile=percentiles(scores, scored_np),
                       rank=ranks(scores, scored_np), timings=timings, memory=peak.to_dict(), derivatives=derivatives,
                       frame=frame_report(ctx, result, normalised), check=check, anomalies=anomalies, risk=risk,
                       long_input=long_result)


def frame_report(ctx: Context, result: AttributionResult, normalised: np.ndarray) -> dict[str, Any]:
    """The frame (ids, why) and the spec's two diagnostics: the share of the gate's raw mass on
    frame tokens (HETA methods only; None otherwise) and the final score's share on the first
    content token (the word that would be the attention sink without a frame)."""
    k = ctx.frame_len
    gate_share = None
    if result.gate_raw is not None:
        m = np.clip(np.asarray(result.gate_raw, dtype=np.float64), 0.0, None)
        gate_share = float(m[:k].sum() / m.sum()) if m.sum() > 0 else 0.0
    first = ctx.first_content_index
    return {**ctx.frame.to_dict(), "tokens": [t.display for t in ctx.tokens[:k]],
            "gate_mass_on_frame": gate_share,
            "first_content_index": first,
            "first_content_share": None if first is None else float(normalised[first])}


def association_matrix(lm: LoadedModel, first: Explanation, method: str = "heta", control: JobControl | None = None,
                       cache=None, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The input x output association matrix of a generation: rows = each generated token,
    columns = every token before the last one, cells = that row target's normalised score of the
    column token (None where the column comes after the row). `first` is one explanation of the
    generation (its row is reused); every other row is explained with the same settings."""
    ctx = first.context
    gen_positions = range(ctx.prompt_len, len(ctx.ids))
    cols = [t.display for t in ctx.tokens[: len(ctx.ids) - 1]]
    rows, matrix = [], []
    for k, t in enumerate(gen_positions):
        if control is not None:
            control.step("association", k, len(gen_positions))
        exp = first if t == ctx.target_pos else explain_context(lm, ctx.with_target(t), first.settings, method,
                                                                control, cache=cache)
        rows.append(ctx.tokens[t].display)
        matrix.append([float(v) for v in exp.normalised] + [None] * (len(cols) - t))
        if progress is not None:
            progress(len(rows), len(gen_positions))
    return {"rows": rows, "columns": cols, "row_positions": list(gen_positions), "matrix": matrix}


def make_context(lm: LoadedModel, prompt: str | Conversation, target: TargetSpec, settings: HetaSettings, cache=None) -> Context:
    """The context of `prompt` and `target` as this model sees it: framed per `settings.frame`,
    within `settings.max_tokens`; tokenization and generation reused from `cache`."""
    return build_context(lm.model, lm.tokenizer, prompt, target, max_tokens=settings.max_tokens, cache=cache,
                         identity=ModelIdentity.of(lm), frame=settings.frame, long_input=settings.long_input)


def explain(lm: LoadedModel, prompt: str | Conversation, target: TargetSpec | None = None, settings: HetaSettings | None = None,
            method: str = "heta", control: JobControl | None = None, cache=None,
            memory_limit_bytes: int | None = None) -> Explanation:
    """Explain one prediction of `lm` on `prompt` (default: the first generated token); a
    `Conversation` is explained at the model's answer to its last turn."""
    settings = settings or HetaSettings.preset("balanced")
    target = target or TargetSpec()
    timer = StageTimer()
    with timer.stage("context"):
        ctx = make_context(lm, prompt, target, settings, cache)
    return explain_context(lm, ctx, settings, method, control, timer, cache, memory_limit_bytes)
