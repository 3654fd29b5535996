"""Perturbation baselines (spec 'Faithfulness: baselines'): occlusion, leave-one-out. Token i's
embedding is zeroed and the drop in log p(y) is its score (clamped at 0). The masked forwards are
the same prefix-KV-reusing batches as HETA's information gain (masking.py)."""
from __future__ import annotations

from typing import ClassVar

import torch

from ..models.footprint import batch_memory_bytes, memory_limit
from ..models.loader import attention_implementation
from ..settings import HetaSettings
from .base import AttributionMethod, AttributionResult, MethodInput, fit_batch
from .masking import masked_copy_bytes, masked_last_logits
from .registry import register
from .scores import finish


@register
class Occlusion(AttributionMethod):
    name: ClassVar[str] = "occlusion"
    description: ClassVar[str] = "leave-one-out: drop in log p(y) when token i's embedding is zeroed (clamped at 0)"

    def plan(self, lm, n: int, n_scored: int, settings: HetaSettings,
             memory_limit_bytes: int | None = None) -> tuple[HetaSettings, list[str]]:
        """The default plan, then `mask_batch` (masked copies per pass, each with its copy of the
        prefix key/value cache) halved until that many copies fit the memory limit."""
        settings, notes = super().plan(lm, n, n_scored, settings, memory_limit_bytes)
        per_copy = masked_copy_bytes(lm, n)
        return fit_batch(settings, "mask_batch", per_copy, memory_limit(lm, memory_limit_bytes), notes,
                         batch_memory_bytes(lm, settings.batch_memory_mb)), notes

    def attribute(self, inp: MethodInput) -> AttributionResult:
        with torch.no_grad(), attention_implementation(inp.lm.model, "sdpa"):
            logits = inp.lm.model(inputs_embeds=inp.X[None], use_cache=False, logits_to_keep=1).logits[0, -1]
        base = torch.log_softmax(logits.float(), -1)[inp.target_id]
        scores = torch.zeros(inp.X.shape[0], device=inp.X.device)
        positions = torch.nonzero(inp.scored).flatten().tolist()
        for chunk, lq in masked_last_logits(inp.lm, inp.X, positions, "zero", inp.settings.mask_batch, inp.control,
                                             budget_bytes=batch_memory_bytes(inp.lm, inp.settings.batch_memory_mb)):
            scores[chunk] = (base - torch.log_softmax(lq.float(), -1)[:, inp.target_id]).to(scores.dtype)
        return finish(scores, inp, logits)
