"""HETA and its single-component ablations, behind the method registry."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..combine import combine, normalise_scored
from ..components.curvature import TargetGraph, curvature_scores
from ..components.gate import gate_scores
from ..components.information import information_scores, information_taylor
from .base import AttributionMethod, AttributionResult, Component, MethodInput, register


def _np(t) -> np.ndarray:
    return t.detach().double().cpu().numpy()


@register
class Heta(AttributionMethod):
    """Attr_i = M_i * (beta * S_i + gamma * I_i): gate x (curvature + information gain)."""

    name: ClassVar[str] = "heta"
    description: ClassVar[str] = "HETA: attention-value gate x (Hessian sensitivity + KL information gain)"
    components: ClassVar[tuple[str, ...]] = ("M", "S", "I")

    def needs_gradients(self, settings) -> bool:
        return "S" in self.components or ("I" in self.components and settings.information == "taylor")

    def attribute(self, inp: MethodInput) -> AttributionResult:
        scored = inp.scored.cpu().numpy()
        raw: dict[str, np.ndarray] = {}
        # The gate pass always runs: it also yields the logits at p that I and the report need.
        with inp.timer.stage("gate"):
            inp.control.step("gate", 0, 1)
            gate = gate_scores(inp.lm, inp.X)
            raw["M"] = _np(gate.M_raw)
            logits = gate.logits
        taylor = inp.settings.information == "taylor"
        graph = None
        if "S" in self.components or ("I" in self.components and taylor):
            with inp.timer.stage("graph"), inp.grad_context():  # one differentiable forward for S and Taylor I
                graph = TargetGraph(inp.lm.model, inp.X, inp.target_id)
        if "S" in self.components:
            with inp.timer.stage("curvature"):
                raw["S"] = _np(curvature_scores(inp.lm, inp.X, inp.target_id, inp.scored, inp.settings,
                                                inp.control, graph=graph))
        if "I" in self.components:
            with inp.timer.stage("information"):
                if taylor:
                    raw["I"] = _np(information_taylor(inp.lm, inp.X, graph, inp.scored, inp.settings, inp.control))
                else:
                    raw["I"] = _np(information_scores(inp.lm, inp.X, logits, inp.scored, inp.settings, inp.control,
                                                      cache=inp.cache, input_ids=inp.input_ids.tolist()))
        del graph
        return self._result(raw, scored, inp, logits)

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
