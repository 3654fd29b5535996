"""Gradient baselines (spec 'Faithfulness: baselines'): gradient saliency, input x gradient and
integrated gradients, all of g(X) = log p(y | X) with respect to the context embeddings X.
Every differentiable forward enters `inp.grad_context` (quantized models may route it through
the dequantized weights); checked against Captum in tests/core/methods/test_baselines.py."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..options import check_options, option
from ..models.footprint import activation_bytes, batch_memory_bytes, items_that_fit, memory_limit
from ..settings import HetaSettings
from .base import AttributionMethod, AttributionResult, MethodInput, fit_batch
from .logprob import target_logprob
from .registry import register
from .scores import finish


def _gradient(inp: MethodInput, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(d g / d X, logits at p) for g = log p(y). The logits are None when the gradient pass ran
    through a derivative fallback (they would not be the model's own; the engine recomputes them)."""
    with torch.enable_grad(), inp.grad_context():
        Xg = X.detach().clone().requires_grad_(True)
        logits = inp.lm.model(inputs_embeds=Xg[None], use_cache=False, logits_to_keep=1).logits[0, -1]
        g = torch.log_softmax(logits.float(), -1)[inp.target_id]
        (grad,) = torch.autograd.grad(g, Xg)
    return grad, (logits if inp.grad_context is contextlib.nullcontext else None)


@register
class Saliency(AttributionMethod):
    name: ClassVar[str] = "saliency"
    uses_gradients: ClassVar[bool] = True
    description: ClassVar[str] = "gradient saliency: ||d log p(y) / d x_i||_2"

    def attribute(self, inp: MethodInput) -> AttributionResult:
        grad, logits = _gradient(inp, inp.X)
        return finish(grad.norm(dim=-1), inp, logits)


@register
class InputXGradient(AttributionMethod):
    name: ClassVar[str] = "input_x_gradient"
    uses_gradients: ClassVar[bool] = True
    description: ClassVar[str] = "input x gradient: |sum_d x_id * d log p(y) / d x_id|"

    def attribute(self, inp: MethodInput) -> AttributionResult:
        grad, logits = _gradient(inp, inp.X)
        return finish((grad * inp.X).sum(-1).abs(), inp, logits)


@dataclass(frozen=True)
class IntegratedGradientsConfig:
    """Integrated gradients' own knob (recorded in the report's settings.extra and the cache key)."""

    ig_steps: int = option(32, low=1, high=1024, api_high=256, help="integrated gradients: path points (Riemann midpoints)")

    def __post_init__(self) -> None:
        check_options(self)


@register
class IntegratedGradients(AttributionMethod):
    """Sundararajan et al. 2017, zero-embedding baseline, Riemann midpoint rule with `steps`
    points (`IntegratedGradientsConfig.ig_steps`, default 32), as many points per pass as the batch
    memory budget holds (at most `probe_batch`); per-token score |sum_d (x - x0) * mean_alpha grad|."""

    name: ClassVar[str] = "integrated_gradients"
    uses_gradients: ClassVar[bool] = True
    config: ClassVar[type] = IntegratedGradientsConfig
    description: ClassVar[str] = "integrated gradients, zero baseline"

    def plan(self, lm, n: int, n_scored: int, settings: HetaSettings,
             memory_limit_bytes: int | None = None) -> tuple[HetaSettings, list[str]]:
        """The default plan, then `probe_batch` (path points per backward) halved until that many
        differentiable copies fit the memory limit."""
        settings, notes = super().plan(lm, n, n_scored, settings, memory_limit_bytes)
        per_point = activation_bytes(lm, n, with_grad=True)
        return fit_batch(settings, "probe_batch", per_point, memory_limit(lm, memory_limit_bytes), notes,
                         batch_memory_bytes(lm, settings.batch_memory_mb)), notes

    def attribute(self, inp: MethodInput) -> AttributionResult:
        return finish(self.signed_attributions(inp).abs(), inp)

    def signed_attributions(self, inp: MethodInput) -> torch.Tensor:
        """(n,) signed sum_d (x - x0) * mean_alpha grad, before the absolute value: by
        completeness they sum to g(x) - g(x0) up to the Riemann error (checked in the tests).
        The baseline x0 zeroes the scored tokens only: frame and template tokens stay as they are
        along the whole path (spec 'Frame token': no baseline zeroes them)."""
        steps = self.options(inp.settings).ig_steps
        X0 = inp.X * (~inp.scored).to(inp.X.dtype)[:, None]
        D = inp.X - X0  # x - x0: zero on unscored rows
        alphas = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
        total = torch.zeros_like(D, dtype=torch.float32)
        budget = batch_memory_bytes(inp.lm, inp.settings.batch_memory_mb)
        B = items_that_fit(inp.settings.probe_batch, activation_bytes(inp.lm, inp.X.shape[0], with_grad=True), budget)
        for start in range(0, steps, B):
            inp.control.step("integrated gradients", start, steps)
            a = alphas[start:start + B].to(D.dtype).to(D.device)
            with torch.enable_grad(), inp.grad_context():
                Xs = (X0[None] + a[:, None, None] * D[None]).detach().requires_grad_(True)
                g = target_logprob(inp.lm.model, Xs, inp.target_id).sum()
                (grad,) = torch.autograd.grad(g, Xs)
            total += grad.float().sum(0)
        return (D.float() * total / steps).sum(-1)
