"""The target log-probability g(X) = log softmax(logits[p])[y] (spec 'Notation') for a batch of
context embeddings: what curvature S (HETA) and integrated gradients differentiate."""
from __future__ import annotations

import torch

from ..tensors import work_dtype


def target_logprob(model, X: torch.Tensor, target_id: int) -> torch.Tensor:
    """g for a batch of embeddings X (B, n, d) -> (B,), in float32 (float64 for float64 models)."""
    logits = model(inputs_embeds=X, use_cache=False, logits_to_keep=1).logits[:, -1]
    return torch.log_softmax(logits.to(work_dtype(logits.dtype)), dim=-1)[:, target_id]
