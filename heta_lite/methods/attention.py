"""Attention baselines (spec 'Faithfulness: baselines'): last-layer attention and attention rollout,
read at the predicting position p. One eager forward with attentions; scores are non-negative,
zero at unscored tokens, and go through the same registry, inputs and report as HETA."""
from __future__ import annotations

from typing import ClassVar

import torch

from ..models.loader import attention_implementation
from .base import AttributionMethod, AttributionResult, MethodInput
from .registry import register
from .scores import finish


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
        return finish(atts[-1][:, -1, :].mean(0), inp, logits)


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
        return finish(row, inp, logits)
