"""How a baseline's raw per-token tensor becomes its result: clamped at 0, zero at unscored tokens
(the engine normalises, ranks and reports, the same for every method)."""
from __future__ import annotations

import numpy as np
import torch

from ..tensors import to_numpy
from .base import AttributionResult, MethodInput


def finish(scores: torch.Tensor, inp: MethodInput, logits: torch.Tensor | None = None) -> AttributionResult:
    s = to_numpy(scores)
    s = np.where(inp.scored.cpu().numpy(), np.clip(s, 0, None), 0.0)
    return AttributionResult(scores=s, logits=None if logits is None else logits.detach())
