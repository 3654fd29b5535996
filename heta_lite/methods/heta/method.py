"""HETA and its single-component ablations, behind the method registry.

    Attr_i = M_i * (beta * S_i + gamma * I_i)     (spec 'Combination'; combine.py)

M: the attention-value gate (gate.py), S: curvature from HVPs (curvature.py), I: KL information
gain under masking (information.py). One gate pass always runs (it also yields the logits at p);
S and the Taylor I share one differentiable graph. `plan` is HETA's cost model (cost.py): a time
budget picks a preset (presets.py), batches shrink to the memory limit.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from ...cache import ModelIdentity, cache_key
from ...settings import HetaSettings
from ...tensors import to_numpy
from ..base import AttributionMethod, AttributionResult, Component, MethodInput
from ..registry import register
from .combine import combine, normalise_scored
from .cost import plan_heta, resolve_information
from .curvature import TargetGraph, curvature_scores
from .gate import gate_scores
from .information import information_scores, information_taylor


# Settings that change how S and I are combined with M, never S or I themselves: a run that differs
# only in these (another gate, beta, gamma) reuses the cached S and I (switching the gate is instant).
_NOT_IN_S_OR_I = ("gate", "beta", "gamma", "combination", "check", "quality", "time_budget_s")


def _cached(inp: MethodInput, name: str, compute) -> np.ndarray:
    """S or I from the HetaCache when the same model, code, context, target and settings (all but
    `_NOT_IN_S_OR_I`) computed it before; else computed and stored."""
    if inp.cache is None:
        return compute()
    settings = {k: v for k, v in inp.settings.to_dict().items() if k not in _NOT_IN_S_OR_I}
    key = cache_key(ModelIdentity.of(inp.lm), "component", name=name, ids=inp.input_ids.tolist(),
                    target_id=int(inp.target_id), scored=inp.scored.tolist(), settings=settings)
    return inp.cache.get_or_compute(key, compute)


@register
class Heta(AttributionMethod):
    """Attr_i = M_i * (beta * S_i + gamma * I_i): gate x (curvature + information gain)."""

    name: ClassVar[str] = "heta"
    description: ClassVar[str] = "HETA: attention-value gate x (Hessian sensitivity + KL information gain)"
    components: ClassVar[tuple[str, ...]] = ("M", "S", "I")

    def needs_gradients(self, settings) -> bool:
        # 'auto' may become the Taylor estimate, which differentiates
        return "S" in self.components or ("I" in self.components and settings.information != "exact")

    def plan(self, lm, n: int, n_scored: int, settings: HetaSettings,
             memory_limit_bytes: int | None = None) -> tuple[HetaSettings, list[str]]:
        """A time budget picks the best preset that fits (cost.plan_for_budget); batches are then
        shrunk to the memory limit (cost.fit_memory)."""
        return plan_heta(lm, n, n_scored, settings, memory_limit_bytes)

    def attribute(self, inp: MethodInput) -> AttributionResult:
        scored = inp.scored.cpu().numpy()
        raw: dict[str, np.ndarray] = {}
        # The gate pass always runs: it also yields the logits at p that I and the report need.
        with inp.timer.stage("gate"):
            inp.control.step("gate", 0, 1)
            gate = gate_scores(inp.lm, inp.X, inp.settings.gate)
            raw["M"] = to_numpy(gate.M_raw)
            logits = gate.logits
        # `plan` resolved 'auto' already; a direct call (benchmarks, tests) resolves it here the same way
        taylor = resolve_information(inp.settings, int(scored.sum())).information == "taylor"
        graph: list[TargetGraph] = []

        def shared_graph() -> TargetGraph:  # one differentiable forward for S and Taylor I, built on first use
            if not graph:
                with inp.timer.stage("graph"), inp.grad_context():
                    graph.append(TargetGraph(inp.lm.model, inp.X, inp.target_id))
            return graph[0]

        if "S" in self.components:
            with inp.timer.stage("curvature"):
                raw["S"] = _cached(inp, "S", lambda: to_numpy(curvature_scores(
                    inp.lm, inp.X, inp.target_id, inp.scored, inp.settings, inp.control, graph=shared_graph())))
        if "I" in self.components:
            with inp.timer.stage("information"):
                if taylor:
                    raw["I"] = _cached(inp, "I", lambda: to_numpy(information_taylor(
                        inp.lm, inp.X, shared_graph(), inp.scored, inp.settings, inp.control)))
                else:
                    raw["I"] = _cached(inp, "I", lambda: to_numpy(information_scores(
                        inp.lm, inp.X, logits, inp.scored, inp.settings, inp.control, cache=inp.cache,
                        input_ids=inp.input_ids.tolist())))
        graph.clear()
        result = self._result(raw, scored, inp, logits)
        result.gate_raw = raw["M"]
        return result

    def _result(self, raw, scored, inp, logits) -> AttributionResult:
        n = len(scored)
        zeros = np.zeros(n)
        comb = combine(raw.get("M", zeros), raw.get("S", zeros), raw.get("I", zeros), scored, inp.settings)
        normalised = {"M": comb.M, "S": comb.S, "I": comb.I}
        comps = {k: Component(raw=np.where(scored, raw[k], 0.0), normalised=normalised[k])
                 for k in self.components}
        return AttributionResult(scores=comb.attr, components=comps, logits=logits)


class _HetaAblation(Heta):
    """One HETA component alone (gate still run: it yields the logits and costs one forward)."""

    def _result(self, raw, scored, inp, logits) -> AttributionResult:
        (k,) = self.components
        norm = normalise_scored(raw[k], scored)
        return AttributionResult(scores=norm, components={k: Component(raw=np.where(scored, raw[k], 0.0), normalised=norm)},
                                 logits=logits)


@register
class HetaGateOnly(_HetaAblation):
    name = "heta-M"
    description = "HETA ablation: attention-value gate M alone"
    components = ("M",)


@register
class HetaCurvatureOnly(_HetaAblation):
    name = "heta-S"
    description = "HETA ablation: Hessian sensitivity S alone"
    components = ("S",)


@register
class HetaInformationOnly(_HetaAblation):
    name = "heta-I"
    description = "HETA ablation: KL information gain I alone"
    components = ("I",)
