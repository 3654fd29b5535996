"""Component 2 (spec): curvature sensitivity S from Hessian-vector products of
g(X) = log softmax(logits[p])[y] with respect to the context embeddings X (n x d).

The Hessian is never formed. An HVP is double backprop: grad g, then the gradient of
<grad g, v>. Probes are batched: the input is replicated B times in the batch, so one
forward/backward/backward pass yields B HVPs (rows of a batch don't interact, so each
row's Hessian is the same H).

Estimators (probes R[k] ~ Rademacher, drawn once from a seeded CPU generator):
- block (paper):  S_i = mean_k || (H r_{k,i})_i ||_1, r_{k,i} = R[k, i] on token i's block only
                  -> n*m HVPs.
- global (fast):  S_i = || mean_k R[k,i] * (H R[k])_i ||_1  (Hutchinson estimate of the
                  diagonal of H_ii, mean per element before the norm) -> m HVPs.
"""
from __future__ import annotations

import torch

from ..control import NO_CONTROL, JobControl
from ..models.loader import LoadedModel
from ..settings import HetaSettings


def rademacher_probes(seed: int, m: int, n: int, d: int, dtype: torch.dtype, device) -> torch.Tensor:
    """R (m, n, d) in {-1, +1}; drawn on the CPU so every device gets the same probes."""
    g = torch.Generator().manual_seed(int(seed))
    return (torch.randint(0, 2, (m, n, d), generator=g) * 2 - 1).to(dtype=dtype, device=device)


def target_logprob(model, X: torch.Tensor, target_id: int) -> torch.Tensor:
    """g for a batch of embeddings X (B, n, d) -> (B,), computed in float32 (float64 for float64 models)."""
    logits = model(inputs_embeds=X, use_cache=False, logits_to_keep=1).logits[:, -1]
    wd = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return torch.log_softmax(logits.to(wd), dim=-1)[:, target_id]


def hvp_batch(model, X: torch.Tensor, target_id: int, V: torch.Tensor) -> torch.Tensor:
    """H v_b for each probe v_b in V (B, n, d); X is (n, d). Double backprop on a replicated batch."""
    B = V.shape[0]
    with torch.enable_grad():
        Xr = X.detach().unsqueeze(0).expand(B, *X.shape).clone().requires_grad_(True)
        g = target_logprob(model, Xr, target_id).sum()
        (grad,) = torch.autograd.grad(g, Xr, create_graph=True)
        (hv,) = torch.autograd.grad(grad, Xr, grad_outputs=V.to(grad.dtype))
    return hv.detach()


def curvature_scores(lm: LoadedModel, X: torch.Tensor, target_id: int, scored: torch.Tensor,
                     settings: HetaSettings, control: JobControl = NO_CONTROL) -> torch.Tensor:
    """S_raw (n,) with zeros at unscored positions."""
    n, d = X.shape
    m = settings.num_probes
    R = rademacher_probes(settings.seed, m, n, d, X.dtype, X.device)
    S = torch.zeros(n, dtype=torch.float64 if X.dtype == torch.float64 else torch.float32, device=X.device)
    B = max(1, settings.probe_batch)
    if settings.estimator == "block":
        pairs = [(i, k) for i in torch.nonzero(scored).flatten().tolist() for k in range(m)]
        for start in range(0, len(pairs), B):
            control.step("curvature", start, len(pairs))
            chunk = pairs[start:start + B]
            V = torch.zeros(len(chunk), n, d, dtype=X.dtype, device=X.device)
            rows = torch.arange(len(chunk), device=X.device)
            pos = torch.tensor([i for i, _ in chunk], device=X.device)
            ks = torch.tensor([k for _, k in chunk], device=X.device)
            V[rows, pos] = R[ks, pos]
            HV = hvp_batch(lm.model, X, target_id, V)
            S.index_add_(0, pos, HV[rows, pos].abs().sum(-1).to(S.dtype) / m)
        control.step("curvature", len(pairs), len(pairs))
    else:
        acc = torch.zeros(n, d, dtype=S.dtype, device=X.device)
        for start in range(0, m, B):
            control.step("curvature", start, m)
            ks = list(range(start, min(m, start + B)))
            HV = hvp_batch(lm.model, X, target_id, R[ks])
            acc += (R[ks].to(S.dtype) * HV.to(S.dtype)).sum(0)
        control.step("curvature", m, m)
        S = (acc / m).abs().sum(-1) * scored.to(S.dtype)
    return S
