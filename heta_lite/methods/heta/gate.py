"""Component 1 (spec): the semantic transition gate M, an attention-value flow.

One eager forward. Hooks stream each layer's attention probabilities A^{l,h} and value
vectors V^{l} as the layer runs, so only the rollout R_{l-1} (n x n) and one layer's
attentions are alive at a time. With v^{l,h}_i = || V^{l,kv(h)}_i W_O^{l,h} ||_1:

gate 'full' (the spec's Component 1), over every layer:
    Â^{l,h} = rownorm(0.5 A^{l,h} + 0.5 I)
    phi^{l,h} = Â^{l,h}[p, :] @ R_{l-1}            (row p only: a vector-matrix product)
    M_i      = sum_{l,h} phi^{l,h}_i v^{l,h}_i
    R_l      = mean_h(Â^{l,h}) @ R_{l-1}
gate 'last-quarter': the same, over the layers l >= L - ceil(L/4) only (R = I below them; the
    authors' `layer_subset`). A full-depth causal rollout favours early positions.
gate 'norm-mixing' (Kobayashi et al. 2021; Ferrando et al. 2022), x^l_i the residual stream
    entering layer l (before its norm):
    C^{l,h}_ij = A^{l,h}_ij v^{l,h}_j + [i = j] ||x^l_i||_1 / H
    Â^{l,h} = rownorm(C^{l,h}),  phi^{l,h} = Â^{l,h}[p, :] @ R_{l-1},  R_l = rownorm(sum_h C^{l,h}) @ R_{l-1}
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...models.loader import LoadedModel
from ...tensors import work_dtype


@dataclass
class GateResult:
    M_raw: torch.Tensor  # (n,) sum of phi * v, before clamping
    logits: torch.Tensor  # (V,) logits at p, float32: p(y), rank and alternatives come from here


def first_gate_layer(num_layers: int, gate: str) -> int:
    """The first layer the rollout covers: 0, or L - ceil(L/4) for 'last-quarter'."""
    return num_layers - math.ceil(num_layers / 4) if gate == "last-quarter" else 0


def _rownorm(A: torch.Tensor) -> torch.Tensor:
    return A / A.sum(-1, keepdim=True)


def mixing(A: torch.Tensor, v: torch.Tensor, x_norm: torch.Tensor | None, eye: torch.Tensor,
           gate: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(Â^{l,h} for every head (H, n, n), the head-mixed matrix that advances the rollout (n, n)).
    A: attention probabilities (H, n, n); v: value strengths v^{l,h}_j (n, H); x_norm: ||x^l_i||_1
    (n,), only for 'norm-mixing'."""
    if gate == "norm-mixing":
        H = A.shape[0]
        C = A * v.T[:, None, :] + eye * (x_norm / H)[:, None]  # C[h, i, j] = A_hij v_jh + [i = j] |x_i| / H
        return _rownorm(C), _rownorm(C.sum(0))
    A_hat = _rownorm(0.5 * A + 0.5 * eye)
    return A_hat, A_hat.mean(0)


@torch.no_grad()
def gate_scores(lm: LoadedModel, X: torch.Tensor, gate: str = "full") -> GateResult:
    """M_raw for the context embeddings X (n, d); the target is predicted at p = n-1."""
    n = X.shape[0]
    p = n - 1
    wd = work_dtype(lm.dtype)
    dev = X.device
    dims, arch = lm.dims, lm.arch
    kv_of = dims.kv_index(dev)
    eye = torch.eye(n, dtype=wd, device=dev)
    blocks = arch.blocks(lm.model)
    start = first_gate_layer(len(blocks), gate)
    state = {"R": eye.clone(), "M": torch.zeros(n, dtype=wd, device=dev), "V": None, "x_norm": None, "layers": 0}

    def on_block_input(_module, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        state["x_norm"] = x[0].to(wd).abs().sum(-1)  # (n,) residual stream entering the layer

    def on_value(_module, _inp, out):
        state["V"] = arch.values_from_output(out[0], dims).to(wd)  # (n, H_kv, d_h)

    def make_on_attention(block, layer: int):
        W_O = arch.out_weight_per_head(block, dims)  # (H, d_h, d)

        def on_attention(_module, _inp, out):
            A = out[1] if isinstance(out, tuple) and len(out) > 1 else None
            if A is None:
                raise RuntimeError("attention probabilities were not returned: the gate needs eager attention")
            state["layers"] += 1
            if layer < start:
                state["V"] = None
                return
            A = A[0].to(wd)  # (H, n, n)
            V = state["V"][:, kv_of, :]  # (n, H, d_h): query head h reads kv head kv(h)
            v = torch.einsum("nhk,hkd->nhd", V, W_O.to(wd)).abs().sum(-1)  # (n, H)
            A_hat, advance = mixing(A, v, state["x_norm"], eye, gate)
            phi = A_hat[:, p, :] @ state["R"]  # (H, n)
            state["M"] += (phi * v.T).sum(0)
            state["R"] = advance @ state["R"]
            state["V"] = state["x_norm"] = None

        return on_attention

    handles = []
    try:
        for layer, block in enumerate(blocks):
            if gate == "norm-mixing" and layer >= start:
                handles.append(block.register_forward_pre_hook(on_block_input, with_kwargs=True))
            handles.append(arch.value_module(block).register_forward_hook(on_value))
            handles.append(arch.attention(block).register_forward_hook(make_on_attention(block, layer)))
        out = lm.model(inputs_embeds=X[None], use_cache=False, logits_to_keep=1)
    finally:
        for h in handles:
            h.remove()
    if state["layers"] != len(blocks):
        raise RuntimeError(f"gate saw {state['layers']} of {len(blocks)} layers")
    return GateResult(M_raw=state["M"], logits=out.logits[0, -1].to(wd))
