"""Baseline attribution methods, run through the same registry, inputs and report as HETA so
the evaluation compares like with like. Scores are non-negative, zero at unscored tokens."""
from __future__ import annotations

import contextlib
from typing import ClassVar

import numpy as np
import torch

from ..components.curvature import target_logprob
from ..components.information import masked_last_logits
from ..models.loader import attention_implementation
from .base import AttributionMethod, AttributionResult, MethodInput, register


def _finish(scores: torch.Tensor, inp: MethodInput, logits: torch.Tensor | None = None) -> AttributionResult:
    s = scores.detach().double().cpu().numpy()
    s = np.where(inp.scored.cpu().numpy(), np.clip(s, 0, None), 0.0)
    return AttributionResult(scores=s, logits=None if logits is None else logits.detach())


def _gradient(inp: MethodInput, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(d g / d X, logits at p) for g = log p(y). The logits are None when the gradient pass ran
    through a derivative fallback (they would not be the model's own; the engine recomputes them)."""
    with torch.enable_grad(), inp.grad_context():
        Xg = X.detach().clone().requires_grad_(True)
        logits = inp.lm.model(inputs_embeds=Xg[None], use_cache=False, logits_to_keep=1).logits[0, -1]
        g = torch.log_softmax(logits.float(), -1)[inp.target_id]
        (grad,) = torch.autograd.grad(g, Xg)
    return grad, (logits if inp.grad_context is contextlib.nullcontext else None)


@torch.no_grad()
def _attentions(inp: MethodInput) -> tuple[list[torch.Tensor], torch.Tensor]:
    with attention_implementation(inp.lm.model, "eager"):
        out = inp.lm.model(inputs_embeds=inp.X[None], output_attentions=True, use_cache=False, logits_to_keep=1)
    return [a[0].float() for a in out.attentions], out.logits[0, -1]


@register
class LastLayerAttention(AttributionMethod):
    name: ClassVar[str] = "attention"
    description: ClassVar[str] = "attention of the predicting position, last layer, mean over heads"

    def attribute(self, inp: MethodInput) -> AttributionResult:
        atts, logits = _attentions(inp)
        return _finish(atts[-1][:, -1, :].mean(0), inp, logits)


@register
class AttentionRollout(AttributionMethod):
    name: ClassVar[str] = "rollout"
    description: ClassVar[str] = "attention rollout (Abnar & Zuidema 2020): prod of rownorm(0.5 mean_h A + 0.5 I), row p"

    def attribute(self, inp: MethodInput) -> AttributionResult:
        atts, logits = _attentions(inp)
        n = inp.X.shape[0]
        eye = torch.eye(n, device=inp.X.device)
        row = eye[-1]
        for A in reversed(atts):  # row p of A_L ... A_1, as a vector-matrix chain
            A_hat = 0.5 * A.mean(0) + 0.5 * eye
            A_hat = A_hat / A_hat.sum(-1, keepdim=True)
            row = row @ A_hat
        return _finish(row, inp, logits)


@register
class Saliency(AttributionMethod):
    name: ClassVar[str] = "saliency"
    uses_gradients: ClassVar[bool] = True
    description: ClassVar[str] = "gradient saliency: ||d log p(y) / d x_i||_2"

    def attribute(self, inp: MethodInput) -> AttributionResult:
        grad, logits = _gradient(inp, inp.X)
        return _finish(grad.norm(dim=-1), inp, logits)


@register
class InputXGradient(AttributionMethod):
    name: ClassVar[str] = "input_x_gradient"
    uses_gradients: ClassVar[bool] = True
    description: ClassVar[str] = "input x gradient: |sum_d x_id * d log p(y) / d x_id|"

    def attribute(self, inp: MethodInput) -> AttributionResult:
        grad, logits = _gradient(inp, inp.X)
        return _finish((grad * inp.X).sum(-1).abs(), inp, logits)


@register
class IntegratedGradients(AttributionMethod):
    """Sundararajan et al. 2017, zero-embedding baseline, Riemann midpoint rule with `steps`
    points (settings.extra['ig_steps'], default 32), `probe_batch` points per pass; per-token
    score |sum_d (x - x0) * mean_alpha grad|."""

    name: ClassVar[str] = "integrated_gradients"
    uses_gradients: ClassVar[bool] = True
    description: ClassVar[str] = "integrated gradients, zero baseline"

    def attribute(self, inp: MethodInput) -> AttributionResult:
        return _finish(self.signed_attributions(inp).abs(), inp)

    def signed_attributions(self, inp: MethodInput) -> torch.Tensor:
        """(n,) signed sum_d (x - x0) * mean_alpha grad, before the absolute value: by
        completeness they sum to g(x) - g(x0) up to the Riemann error (checked in the tests).
        The baseline x0 zeroes the scored tokens only: frame and template tokens stay as they are
        along the whole path (spec 'Frame token': no baseline zeroes them)."""
        steps = int(inp.settings.extra.get("ig_steps", 32))
        X0 = inp.X * (~inp.scored).to(inp.X.dtype)[:, None]
        D = inp.X - X0  # x - x0: zero on unscored rows
        alphas = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
        total = torch.zeros_like(D, dtype=torch.float32)
        B = max(1, inp.settings.probe_batch)
        for start in range(0, steps, B):
            inp.control.step("integrated gradients", start, steps)
            a = alphas[start:start + B].to(D.dtype).to(D.device)
            with torch.enable_grad(), inp.grad_context():
                Xs = (X0[None] + a[:, None, None] * D[None]).detach().requires_grad_(True)
                g = target_logprob(inp.lm.model, Xs, inp.target_id).sum()
                (grad,) = torch.autograd.grad(g, Xs)
            total += grad.float().sum(0)
        return (D.float() * total / steps).sum(-1)


@register
class Occlusion(AttributionMethod):
    name: ClassVar[str] = "occlusion"
    description: ClassVar[str] = "leave-one-out: drop in log p(y) when token i's embedding is zeroed (clamped at 0)"

    def attribute(self, inp: MethodInput) -> AttributionResult:
        with torch.no_grad(), attention_implementation(inp.lm.model, "sdpa"):
            logits = inp.lm.model(inputs_embeds=inp.X[None], use_cache=False, logits_to_keep=1).logits[0, -1]
        base = torch.log_softmax(logits.float(), -1)[inp.target_id]
        scores = torch.zeros(inp.X.shape[0], device=inp.X.device)
        positions = torch.nonzero(inp.scored).flatten().tolist()
        for chunk, lq in masked_last_logits(inp.lm, inp.X, positions, "zero", inp.settings.mask_batch, inp.control):
            scores[chunk] = (base - torch.log_softmax(lq.float(), -1)[:, inp.target_id]).to(scores.dtype)
        return _finish(scores, inp, logits)
