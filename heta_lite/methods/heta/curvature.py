"""Component 2 (spec): curvature sensitivity S from Hessian-vector products of
g(X) = log softmax(logits[p])[y] with respect to the context embeddings X (n x d).

The Hessian is never formed. `TargetGraph` runs ONE forward and ONE create_graph backward;
every HVP after that is a second backward through the same graph, and a batch of probes shares
one vmapped backward: H v_b for all b at once. How many share it follows from the batch memory
budget (`probes_per_batch`): on a CPU the batch buys nothing (SmolLM2, one thread: 1.50 s per HVP
one at a time, 1.40 s sixteen at a time at n = 64; equal at n = 256) but each probe adds 0.6 of a
forward's activations, so a long context gets small batches and memory stays linear in n.

Estimators (probes R[k] ~ Rademacher, drawn once from a seeded CPU generator):
- block (paper):  S_i = mean_k || (H r_{k,i})_i ||_1, r_{k,i} = R[k, i] on token i's block only
                  -> n*m HVPs.
- global (fast):  S_i = || mean_k R[k,i] * (H R[k])_i ||_1  (Hutchinson estimate of the
                  diagonal of H_ii, mean per element before the norm) -> m HVPs.
"""
from __future__ import annotations

import torch

from ...control import NO_CONTROL, JobControl
from ...models.footprint import activation_bytes, batch_memory_bytes, items_that_fit
from ...models.loader import LoadedModel
from ...settings import HetaSettings
from ...tensors import work_dtype


def rademacher_probes(seed: int, m: int, n: int, d: int, dtype: torch.dtype, device) -> torch.Tensor:
    """R (m, n, d) in {-1, +1}; drawn on the CPU so every device gets the same probes."""
    g = torch.Generator().manual_seed(int(seed))
    return (torch.randint(0, 2, (m, n, d), generator=g) * 2 - 1).to(dtype=dtype, device=device)


class TargetGraph:
    """One differentiable forward at X, reused for every HVP and logit vector-Jacobian product."""

    def __init__(self, model, X: torch.Tensor, target_id: int):
        with torch.enable_grad():
            self.X = X.detach().clone().requires_grad_(True)
            logits = model(inputs_embeds=self.X[None], use_cache=False, logits_to_keep=1).logits[0, -1]
            self.logits = logits.to(work_dtype(logits.dtype))
            self.g = torch.log_softmax(self.logits, dim=-1)[target_id]
        self._grad: torch.Tensor | None = None
        self.batched = True  # vmapped backward; False after it failed (e.g. quantized layers)

    @property
    def grad(self) -> torch.Tensor:
        if self._grad is None:
            with torch.enable_grad():
                (self._grad,) = torch.autograd.grad(self.g, self.X, create_graph=True)
        return self._grad

    def _vjp(self, out: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        V = V.to(out.dtype)
        if self.batched:
            try:
                (res,) = torch.autograd.grad(out, self.X, grad_outputs=V, is_grads_batched=True, retain_graph=True)
                return res.detach()
            except (RuntimeError, NotImplementedError):
                self.batched = False  # some autograd.Functions can't be vmapped: loop instead
        return torch.stack([torch.autograd.grad(out, self.X, grad_outputs=v, retain_graph=True)[0].detach()
                            for v in V])

    def hvp(self, V: torch.Tensor) -> torch.Tensor:
        """H v_b for each probe v_b in V (B, n, d)."""
        with torch.enable_grad():
            return self._vjp(self.grad, V)

    def logit_vjp(self, U: torch.Tensor) -> torch.Tensor:
        """u_b^T dlogits/dX for each row u_b of U (B, vocab): (B, n, d)."""
        with torch.enable_grad():
            return self._vjp(self.logits, U)


def graph_bytes(lm: LoadedModel, n: int) -> int:
    """Memory of the shared graph (a differentiable forward and its create_graph backward) at n
    tokens: 1.3 forwards' activations kept for the second backward. Fitted to peak RSS above the
    resident weights on SmolLM2, one thread (graph + one probe: 337 / 1648 MiB measured at n = 64 /
    256; with `probe_bytes` this gives 325 / 1690)."""
    return int(1.3 * activation_bytes(lm, n, with_grad=True))


def probe_bytes(lm: LoadedModel, n: int) -> int:
    """What one more probe in a vmapped HVP batch adds at n tokens (measured on SmolLM2: 111 MiB at
    n = 64, 530 MiB at n = 256, i.e. 0.62 of a forward's activations with grad). A logit VJP
    (Taylor I) costs about the same."""
    return int(0.62 * activation_bytes(lm, n, with_grad=True))


def probes_per_batch(lm: LoadedModel, n: int, settings: HetaSettings) -> int:
    """Probes per vmapped backward: as many as the batch memory budget holds, at most probe_batch."""
    return items_that_fit(settings.probe_batch, probe_bytes(lm, n), batch_memory_bytes(lm, settings.batch_memory_mb))


def hvp_batch(model, X: torch.Tensor, target_id: int, V: torch.Tensor) -> torch.Tensor:
    """H v_b for each v_b in V (B, n, d) at X (n, d) (convenience wrapper; builds its own graph)."""
    return TargetGraph(model, X, target_id).hvp(V)


def curvature_scores(lm: LoadedModel, X: torch.Tensor, target_id: int, scored: torch.Tensor,
                     settings: HetaSettings, control: JobControl = NO_CONTROL,
                     graph: TargetGraph | None = None) -> torch.Tensor:
    """S_raw (n,) with zeros at unscored positions."""
    n, d = X.shape
    m = settings.num_probes
    graph = graph or TargetGraph(lm.model, X, target_id)
    R = rademacher_probes(settings.seed, m, n, d, X.dtype, X.device)
    S = torch.zeros(n, dtype=work_dtype(X.dtype), device=X.device)
    B = probes_per_batch(lm, n, settings)
    if settings.estimator == "block":
        pairs = [(i, k) for i in torch.nonzero(scored).flatten().tolist() for k in range(m)]
        for start in range(0, len(pairs), B):
            control.step("curvature", start, len(pairs))
            chunk = pairs[start:start + B]
            rows = torch.arange(len(chunk), device=X.device)
            pos = torch.tensor([i for i, _ in chunk], device=X.device)
            ks = torch.tensor([k for _, k in chunk], device=X.device)
            V = torch.zeros(len(chunk), n, d, dtype=X.dtype, device=X.device)
            V[rows, pos] = R[ks, pos]
            HV = graph.hvp(V)
            S.index_add_(0, pos, HV[rows, pos].abs().sum(-1).to(S.dtype) / m)
        control.step("curvature", len(pairs), len(pairs))
    else:
        acc = torch.zeros(n, d, dtype=S.dtype, device=X.device)
        for start in range(0, m, B):
            control.step("curvature", start, m)
            ks = list(range(start, min(m, start + B)))
            HV = graph.hvp(R[ks])
            acc += (R[ks].to(S.dtype) * HV.to(S.dtype)).sum(0)
        control.step("curvature", m, m)
        S = (acc / m).abs().sum(-1) * scored.to(S.dtype)
    return S
