"""Component 1 (spec): the semantic transition gate M, an attention-value flow.

One eager forward. Hooks stream each layer's attention probabilities A^{l,h} and value
vectors V^{l} as the layer runs, so only the rollout R_{l-1} (n x n) and one layer's
attentions are alive at a time:

    Â^{l,h} = rownorm(0.5 A^{l,h} + 0.5 I)
    phi^{l,h} = Â^{l,h}[p, :] @ R_{l-1}            (row p only: a vector-matrix product)
    v^{l,h}_i = || V^{l,kv(h)}_i W_O^{l,h} ||_1
    M_i      = sum_{l,h} phi^{l,h}_i v^{l,h}_i
    R_l      = mean_h(Â^{l,h}) @ R_{l-1}
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.loader import LoadedModel


@dataclass
class GateResult:
    M_raw: torch.Tensor  # (n,) sum of phi * v, before clamping
    logits: torch.Tensor  # (V,) logits at p, float32: p(y), rank and alternatives come from here


def work_dtype(lm: LoadedModel) -> torch.dtype:
    return torch.float64 if lm.dtype == torch.float64 else torch.float32


@torch.no_grad()
def gate_scores(lm: LoadedModel, X: torch.Tensor) -> GateResult:
    """M_raw for the context embeddings X (n, d); the target is predicted at p = n-1."""
    n = X.shape[0]
    p = n - 1
    wd = work_dtype(lm)
    dev = X.device
    dims, arch = lm.dims, lm.arch
    kv_of = dims.kv_index(dev)
    eye = torch.eye(n, dtype=wd, device=dev)
    state = {"R": eye.clone(), "M": torch.zeros(n, dtype=wd, device=dev), "V": None, "layers": 0}

    def on_value(_module, _inp, out):
        state["V"] = arch.values_from_output(out[0], dims).to(wd)  # (n, H_kv, d_h)

    def make_on_attention(block):
        W_O = arch.out_weight_per_head(block, dims)  # (H, d_h, d)

        def on_attention(_module, _inp, out):
            A = out[1] if isinstance(out, tuple) and len(out) > 1 else None
            if A is None:
                raise RuntimeError("attention probabilities were not returned: the gate needs eager attention")
            A = A[0].to(wd)  # (H, n, n)
            A_hat = 0.5 * A + 0.5 * eye
            A_hat = A_hat / A_hat.sum(-1, keepdim=True)
            phi = A_hat[:, p, :] @ state["R"]  # (H, n)
            V = state["V"][:, kv_of, :]  # (n, H, d_h): query head h reads kv head kv(h)
            v = torch.einsum("nhk,hkd->nhd", V, W_O.to(wd)).abs().sum(-1)  # (n, H)
            state["M"] += (phi * v.T).sum(0)
            state["R"] = A_hat.mean(0) @ state["R"]
            state["V"] = None
            state["layers"] += 1

        return on_attention

    handles = []
    blocks = arch.blocks(lm.model)
    try:
        for block in blocks:
            handles.append(arch.value_module(block).register_forward_hook(on_value))
            handles.append(arch.attention(block).register_forward_hook(make_on_attention(block)))
        out = lm.model(inputs_embeds=X[None], use_cache=False, logits_to_keep=1)
    finally:
        for h in handles:
            h.remove()
    if state["layers"] != len(blocks):
        raise RuntimeError(f"gate saw {state['layers']} of {len(blocks)} layers")
    return GateResult(M_raw=state["M"], logits=out.logits[0, -1].to(wd))
