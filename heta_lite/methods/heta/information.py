"""Component 3 (spec): information gain I from masking one token at a time.

    I_i = KL(P || P_masked_i) = sum_v P_v (log P_v - log Q_v),   P = softmax(logits[p])

computed from log_softmax (no clamped probabilities), in nats. The masked forwards (prefix-KV
reuse, batching) are heta_lite/methods/masking.py, shared with the occlusion baseline.
`information_taylor` is the fast preset's second-order estimate of the same KL.
"""
from __future__ import annotations

import torch

from ...control import NO_CONTROL, JobControl
from ...errors import InputError
from ...models.footprint import batch_memory_bytes
from ...models.loader import LoadedModel
from ...settings import HetaSettings
from ...tensors import work_dtype
from ..masking import mask_vector, masked_last_logits
from .curvature import TargetGraph, probes_per_batch


def kl_from_logits(logp: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) for log P (V,) and a batch of logits (B, V), in the dtype of logp."""
    logq = torch.log_softmax(logits_q.to(logp.dtype), dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)


@torch.no_grad()
def information_scores(lm: LoadedModel, X: torch.Tensor, logits_p: torch.Tensor, scored: torch.Tensor,
                       settings: HetaSettings, control: JobControl = NO_CONTROL, cache=None,
                       input_ids: list[int] | None = None) -> torch.Tensor:
    """I_raw (n,) in nats, zeros at unscored positions. logits_p: unmasked logits at p.
    With a HetaCache and the ids, the unmasked prefix cache is read from / written to disk."""
    n = X.shape[0]
    wd = work_dtype(logits_p.dtype)
    logp = torch.log_softmax(logits_p.to(wd), dim=-1)
    positions = torch.nonzero(scored).flatten().tolist()
    if settings.mask == "delete" and n < 2:
        raise InputError("Mask 'delete' needs at least 2 context tokens; use mask 'zero'.", "mask")
    I = torch.zeros(n, dtype=wd, device=X.device)
    budget = batch_memory_bytes(lm, settings.batch_memory_mb)
    for chunk, logits_q in masked_last_logits(lm, X, positions, settings.mask, settings.mask_batch, control,
                                              cache, input_ids, budget_bytes=budget):
        I[chunk] = kl_from_logits(logp, logits_q)
    return I


def information_taylor(lm: LoadedModel, X: torch.Tensor, graph: TargetGraph, scored: torch.Tensor,
                       settings: HetaSettings, control: JobControl = NO_CONTROL) -> torch.Tensor:
    """Second-order Taylor estimate of I_i (the 'fast' preset), from one graph and no masked forwards.

    Masking token i moves its embedding by delta_i = mask - x_i, so to first order the logits move
    by dl = J_i delta_i and KL(P || Q) ~ 0.5 Var_P(dl) = 0.5 (sum_v P_v dl_v^2 - (sum_v P_v dl_v)^2).
    J_i delta_i is needed only for the `taylor_vocab` most likely tokens v (weights P_v
    renormalised over them): that many vector-Jacobian products, batched, for all i at once.
    """
    delta = mask_vector(lm, X, settings.mask) - X  # (n, d)
    P = torch.softmax(graph.logits.detach(), dim=-1)
    T = min(settings.taylor_vocab, P.shape[0])
    w, top = P.topk(T)
    w = w / w.sum()
    dl = torch.zeros(T, X.shape[0], dtype=P.dtype, device=X.device)  # dl[v, i] = (J_i delta_i)_v
    B = probes_per_batch(lm, X.shape[0], settings)
    for start in range(0, T, B):
        control.step("information", start, T)
        rows = top[start:start + B]
        U = torch.zeros(len(rows), P.shape[0], dtype=P.dtype, device=X.device)
        U[torch.arange(len(rows)), rows] = 1.0
        G = graph.logit_vjp(U)  # (b, n, d): d logit_v / dX
        dl[start:start + len(rows)] = (G.to(P.dtype) * delta.to(P.dtype)).sum(-1)
    control.step("information", T, T)
    mean = (w[:, None] * dl).sum(0)
    var = (w[:, None] * dl.pow(2)).sum(0) - mean.pow(2)
    return (0.5 * var).clamp_min(0) * scored.to(P.dtype)
