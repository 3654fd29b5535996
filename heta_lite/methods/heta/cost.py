"""HETA's cost model: how long and how much memory a HETA job will take, before it runs.

Time: one short calibration per (model, length bucket) measures a forward, the shared graph
(differentiable forward + create_graph backward) and a batched HVP; every stage's cost is
expressed in those units, with counts from the estimators' definitions (spec 'Component 2/3'):
    gate         ~ 1.5 forwards
    curvature S  ~ n_scored * m HVPs (block) or m HVPs (global)
    information  ~ 1 + n_scored/2 + mask_batch/2 forwards of length n (exact, prefix-KV reuse),
                   or ~ taylor_vocab forwards (Taylor: one logit VJP each, about a forward)
`plan_for_budget` picks the best preset that fits a time budget and says what it picked.

Memory: what the passes that run at once add (the shared graph, one batch of probes through the
double backward, one chunk of masked copies with their key/value caches), each batch sized by the
batch memory budget. `fit_memory` halves that budget until the estimate fits the limit, or
refuses with a message that names the limit. Method-independent pieces: heta_lite/models/footprint.py.
"""
from __future__ import annotations

import dataclasses

import time
from dataclasses import dataclass, field

import torch

from ...cache import ModelIdentity
from ...errors import ResourceLimitError
from ...models.footprint import activation_bytes, batch_memory_bytes, memory_limit
from ...models.loader import LoadedModel
from ...settings import QUALITIES, HetaSettings
from ..masking import masked_pass_bytes
from .curvature import TargetGraph, graph_bytes, probe_bytes, probes_per_batch

BUCKET = 32
_CALIBRATION: dict[tuple, "Calibration"] = {}

# What a time budget may change (the preset's knobs); every other field (mask, beta, gamma, frame,
# gate, check, derivatives, a method's own knobs in `extra`, ...) is the user's and kept.
_BUDGET_FIELDS = ("quality", "estimator", "num_probes", "information", "taylor_vocab")


@dataclass
class Calibration:
    n: int
    forward_s: float  # one no-grad forward of n tokens
    hvp_s: float  # one HVP within a batch, on the shared graph
    graph_s: float  # the differentiable forward + create_graph backward


@dataclass
class Plan:
    settings: HetaSettings
    estimated_s: float
    estimates: dict[str, float] = field(default_factory=dict)
    fits: bool = True
    note: str = ""


def calibrate(lm: LoadedModel, n: int, control=None) -> Calibration:
    """Measure (once per model and 32-token bucket) the cost units of the time model. `control`
    (a JobControl) gets a safe point between the three measurements, so a cancelled estimate stops."""
    nb = max(BUCKET, ((n + BUCKET - 1) // BUCKET) * BUCKET)
    key = (ModelIdentity.of(lm), str(lm.device), nb)
    if key in _CALIBRATION:
        return _CALIBRATION[key]
    d = lm.model.get_input_embeddings().weight.shape[1]
    X = torch.randn(nb, d, device=lm.device, dtype=lm.dtype) * 0.02
    step = control.step if control is not None else (lambda *a: None)
    step("calibrating: forward", 0, 3)
    with torch.no_grad():
        t0 = time.perf_counter()
        lm.model(inputs_embeds=X[None], use_cache=False, logits_to_keep=1)
        fwd = time.perf_counter() - t0
    step("calibrating: gradient", 1, 3)
    t0 = time.perf_counter()
    graph = TargetGraph(lm.model, X, 0)
    _ = graph.grad
    graph_s = time.perf_counter() - t0
    B = 4
    step("calibrating: Hessian-vector products", 2, 3)
    t0 = time.perf_counter()
    graph.hvp(torch.ones(B, nb, d, device=lm.device, dtype=lm.dtype))
    hvp = (time.perf_counter() - t0) / B
    cal = Calibration(n=nb, forward_s=fwd, hvp_s=hvp, graph_s=graph_s)
    _CALIBRATION[key] = cal
    return cal


# One logit VJP of the Taylor estimate costs about one no-grad forward of the same context
# (SmolLM2, CPU, one thread, n = 16: 8 VJPs 2.5-2.7 s, one forward 0.3-0.36 s).
VJP_IN_FORWARDS = 1.0
# 'auto' takes the exact KL while it costs at most this many times the Taylor estimate: measured
# at n = 16 (fast preset), the information stage went from 2.6 to 4.5 s and the whole explanation
# from 8.0 to 9.6 s (+20%) for the spec's exact I instead of an estimate that ranks poorly.
AUTO_EXACT_FACTOR = 2.0


def information_costs(n_scored: int, s: HetaSettings) -> dict[str, float]:
    """The two ways to get I, in forwards of the context: exact (one prefix pass, about n_scored/2
    forwards of masked suffixes, the chunks' overlap) and Taylor (`taylor_vocab` logit VJPs)."""
    return {"exact": 1 + n_scored / 2 + s.mask_batch / 2, "taylor": s.taylor_vocab * VJP_IN_FORWARDS}


def resolve_information(s: HetaSettings, n_scored: int) -> HetaSettings:
    """`information='auto'` (the fast preset's) made concrete: the exact KL while it costs at most
    AUTO_EXACT_FACTOR times the Taylor estimate (short contexts: n_scored <= 22 at the fast preset's
    settings), else the estimate. Exact and Taylor settings are returned as they are."""
    if s.information != "auto":
        return s
    cost = information_costs(n_scored, s)
    return s.replace(information="exact" if cost["exact"] <= AUTO_EXACT_FACTOR * cost["taylor"] else "taylor")


def estimate_seconds(cal: Calibration, n: int, n_scored: int, s: HetaSettings) -> dict[str, float]:
    """Seconds per stage (gate, graph, curvature, information) and their 'total', for n tokens."""
    s = resolve_information(s, n_scored)
    scale = n / cal.n
    fwd, hvp, graph = cal.forward_s * scale, cal.hvp_s * scale, cal.graph_s * scale
    est = {"gate": 1.5 * fwd, "graph": graph}
    est["curvature"] = hvp * (n_scored * s.num_probes if s.estimator == "block" else s.num_probes)
    if s.information == "exact":
        # about n^2/2 token-positions recomputed: n/2 forwards of length n, plus one prefix pass
        est["information"] = fwd * (1 + n_scored / 2 + s.mask_batch / 2)
    else:
        est["information"] = fwd * VJP_IN_FORWARDS * s.taylor_vocab
    est["total"] = sum(est.values())
    return est


def estimate_seconds_long(cal: Calibration, n: int, n_scored: int, s: HetaSettings, plan=None) -> dict[str, float]:
    """`estimate_seconds` of the n-token (windowed) context plus, for a long prompt windowed by
    heta_lite/long_input.py (`plan`: its `LongInputPlan`), the earlier chunks' no-grad forwards as
    stage 'long_input' (one per chunk of up to n + chunk tokens, and one baseline of n)."""
    from ...long_input import chunk_input_tokens, chunk_seconds

    est = estimate_seconds(cal, n, n_scored, s)
    if plan is not None:
        est["long_input"] = chunk_seconds(cal.forward_s, cal.n, len(plan.chunks), chunk_input_tokens(plan, n), n)
        est["total"] += est["long_input"]
    return est


def plan_for_budget(lm: LoadedModel, n: int, n_scored: int, budget_s: float, **overrides) -> Plan:
    """The best preset (accurate > balanced > fast) whose estimate fits `budget_s`; if none does,
    'fast' with fewer probes, flagged as not fitting."""
    cal = calibrate(lm, n)
    for quality in reversed(QUALITIES):
        s = HetaSettings.preset(quality, **overrides)
        est = estimate_seconds(cal, n, n_scored, s)
        if est["total"] <= budget_s:
            return Plan(s, est["total"], est, True, f"picked '{quality}': estimated {est['total']:.1f} s "
                                                      f"<= budget {budget_s:g} s")
    s = HetaSettings.preset("fast", **{**overrides, "num_probes": 1, "taylor_vocab": 4})
    est = estimate_seconds(cal, n, n_scored, s)
    return Plan(s, est["total"], est, False, f"nothing fits {budget_s:g} s at {n} tokens; ran the cheapest "
                                             f"settings (estimated {est['total']:.1f} s)")


def estimate_memory(lm: LoadedModel, n: int, s: HetaSettings) -> dict[str, int]:
    """Peak bytes beyond what is already resident, per stage; 'peak' is the max over stages. Each
    batched stage holds what the batch memory budget lets it (curvature.probes_per_batch,
    masking.chunk_size), so every term grows linearly in n (experiments/bench_latency.py prints
    this estimate beside the measured peak)."""
    s = resolve_information(s, n)
    budget = batch_memory_bytes(lm, s.batch_memory_mb)
    # how many probe vectors there are to batch: block S has one per (scored token, probe)
    hvps = n * s.num_probes if s.estimator == "block" else s.num_probes
    wanted = s.taylor_vocab if s.information == "taylor" else 1
    probes = min(probes_per_batch(lm, n, s), max(hvps, wanted))
    curvature = graph_bytes(lm, n) + probes * probe_bytes(lm, n)
    information = masked_pass_bytes(lm, n, s.mask_batch, budget) if s.information == "exact" else 0
    est = {"gate": activation_bytes(lm, n, with_grad=False), "curvature": curvature, "information": information}
    est["peak"] = max(est.values())
    return est


def fit_memory(lm: LoadedModel, n: int, s: HetaSettings, limit_bytes: int | None = None) -> HetaSettings:
    """Settings whose estimated peak fits `limit_bytes` (default: 80% of the memory free now): the
    batch memory budget is halved (smaller batches, never other results) until it fits;
    ResourceLimitError if even one probe and one masked copy per pass do not."""
    limit = memory_limit(lm, limit_bytes)
    cur = s
    while estimate_memory(lm, n, cur)["peak"] > limit:
        mb = batch_memory_bytes(lm, cur.batch_memory_mb) // 2**20
        if mb <= 1:
            need = estimate_memory(lm, n, cur)["peak"]
            raise ResourceLimitError(
                f"Explaining {n} tokens needs about {need / 2**30:.1f} GiB but the limit is "
                f"{limit / 2**30:.1f} GiB; shorten the prompt or lower max_tokens.")
        cur = cur.replace(batch_memory_mb=max(1, mb // 2))
    return cur


def plan_heta(lm: LoadedModel, n: int, n_scored: int, settings: HetaSettings,
              memory_limit_bytes: int | None = None) -> tuple[HetaSettings, list[str]]:
    """HETA's `AttributionMethod.plan`: resolve a time budget into a preset (the user's own
    mask/beta/gamma/... kept), then shrink the batches to the memory limit. Returns the settings
    to run with and the notes the report shows."""
    notes: list[str] = []
    if settings.time_budget_s is not None:
        keep = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
                if f.name not in _BUDGET_FIELDS}
        plan = plan_for_budget(lm, n, n_scored, settings.time_budget_s, **keep)
        settings = plan.settings
        notes.append(f"time budget: {plan.note}")
    if settings.information == "auto":
        settings = resolve_information(settings, n_scored)
        cost = information_costs(n_scored, settings)
        notes.append(f"information: auto -> {settings.information} ({n_scored} scored tokens: the exact KL costs "
                     f"about {cost['exact']:.0f} forwards, the Taylor estimate about {cost['taylor']:.0f})")
    fitted = fit_memory(lm, n, settings, memory_limit_bytes)
    if fitted != settings:
        notes.append(f"memory: batches shrunk to {fitted.batch_memory_mb} MiB per pass to fit the memory limit "
                     "(results unchanged)")
    return fitted, notes


__all__ = ["Calibration", "Plan", "calibrate", "estimate_memory", "estimate_seconds", "estimate_seconds_long",
           "fit_memory", "information_costs", "plan_for_budget", "plan_heta", "resolve_information"]
