"""Slow, plainly written reference of the gate variants declared in the spec ('Frame token',
evaluation variants): loops over layers, heads and tokens, full matrices, float64. The residual
stream x^l comes from `output_hidden_states` (not from hooks, as the engine does)."""
from __future__ import annotations

import math

import torch

from .heta_reference import _layers, forward_with_values


def reference_gate_variant(model, X, gate: str):
    n = X.shape[0]
    p = n - 1
    cfg = model.config
    H = cfg.num_attention_heads
    Hkv = getattr(cfg, "num_key_value_heads", None) or H
    layers = _layers(model)
    L = len(layers)
    first = L - math.ceil(L / 4) if gate == "last-quarter" else 0
    out, captured, specs = forward_with_values(model, X, output_hidden_states=True)
    I = torch.eye(n, dtype=torch.float64)
    R = I.clone()
    M = torch.zeros(n, dtype=torch.float64)
    for l in range(first, L):
        A = out.attentions[l][0].double()
        V = captured[l].double()
        W = specs[l][2].double()
        x = out.hidden_states[l][0].double()  # the residual stream entering layer l
        v = torch.zeros(n, H, dtype=torch.float64)
        for h in range(H):
            for j in range(n):
                v[j, h] = (V[j, h // (H // Hkv), :] @ W[h]).abs().sum()
        mats, total = [], torch.zeros(n, n, dtype=torch.float64)
        for h in range(H):
            if gate == "norm-mixing":
                C = torch.zeros(n, n, dtype=torch.float64)
                for i in range(n):
                    for j in range(n):
                        C[i, j] = A[h, i, j] * v[j, h] + (x[i].abs().sum() / H if i == j else 0.0)
                total += C
                mats.append(C / C.sum(1, keepdim=True))
            else:
                A_hat = 0.5 * A[h] + 0.5 * I
                mats.append(A_hat / A_hat.sum(1, keepdim=True))
        for h in range(H):
            phi = (mats[h] @ R)[p]
            M += phi * v[:, h]
        if gate == "norm-mixing":
            R = (total / total.sum(1, keepdim=True)) @ R
        else:
            R = torch.stack(mats).mean(0) @ R
    return M
