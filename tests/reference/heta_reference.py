"""A slow, plainly written reference implementation of the HETA spec.

Written from the spec alone, for checking the engine: loops over layers and heads, full
matrices, one Hessian-vector product per probe, one full forward per masked copy, no caches,
no batching, its own per-architecture knowledge. Everything is returned in float64.
"""
from __future__ import annotations

import torch


# Families whose decoder blocks sit at model.model.layers[i].self_attn with separate
# q_proj / k_proj / v_proj and an o_proj (transformers' Llama-style modules).
_SEPARATE_V = ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2")


def _layers(model):
    kind = model.config.model_type
    if kind == "gpt2":
        return list(model.transformer.h)
    if kind in _SEPARATE_V or kind == "phi3":
        return list(model.model.layers)
    raise NotImplementedError(f"the reference does not know the '{kind}' architecture")


def _head_sizes(cfg):
    """(H, H_kv, head_dim, hidden) as the attention modules use them: head_dim from the config when
    it has one (Qwen3, Gemma, Gemma-2: may differ from hidden / H), else hidden / H."""
    H = cfg.num_attention_heads
    d = cfg.hidden_size
    if cfg.model_type == "gpt2":
        return H, H, d // H, d
    Hkv = getattr(cfg, "num_key_value_heads", None) or H
    hd = getattr(cfg, "head_dim", None) or d // H
    return H, Hkv, hd, d


def _split_heads_linear(W, H, hd):
    """nn.Linear o_proj weight (d, H*hd): head h uses columns h*hd:(h+1)*hd -> (H, hd, d)."""
    assert W.shape[1] == H * hd, (W.shape, H, hd)
    return torch.stack([W[:, h * hd:(h + 1) * hd].T for h in range(H)])


def _value_and_out(model, layer):
    """(module whose output contains V, function out->V (n, H_kv, hd), W_O per head (H, hd, d))."""
    cfg = model.config
    kind = cfg.model_type
    H, Hkv, hd, d = _head_sizes(cfg)
    if kind == "gpt2":
        attn = layer.attn

        def take_v(out):  # c_attn output = [q | k | v], each d wide
            assert out.shape[-1] == 3 * d
            return out[0, :, 2 * d:3 * d].reshape(-1, H, hd)

        W = attn.c_proj.weight  # Conv1D: (in = H*hd, out = d); head h uses rows h*hd:(h+1)*hd
        W_heads = torch.stack([W[h * hd:(h + 1) * hd, :] for h in range(H)])
        return attn.c_attn, take_v, W_heads
    if kind == "phi3":
        attn = layer.self_attn
        q_w, kv_w = H * hd, Hkv * hd

        def take_v(out):  # qkv_proj output = [q (H*hd) | k (H_kv*hd) | v (H_kv*hd)]
            assert out.shape[-1] == q_w + 2 * kv_w, (out.shape, q_w, kv_w)
            return out[0, :, q_w + kv_w:q_w + 2 * kv_w].reshape(-1, Hkv, hd)

        return attn.qkv_proj, take_v, _split_heads_linear(attn.o_proj.weight, H, hd)
    if kind in _SEPARATE_V:
        attn = layer.self_attn

        def take_v(out):  # v_proj output: H_kv heads of hd (bias included when the family has one)
            assert out.shape[-1] == Hkv * hd, (out.shape, Hkv, hd)
            return out[0].reshape(-1, Hkv, hd)

        return attn.v_proj, take_v, _split_heads_linear(attn.o_proj.weight, H, hd)
    raise NotImplementedError(f"the reference does not know the '{kind}' architecture")


def target_logprob(model, X, target_id):
    logits = model(inputs_embeds=X[None], use_cache=False).logits[0, -1]
    return torch.log_softmax(logits.double(), dim=-1)[target_id]


def reference_hvp(model, X, target_id, v):
    """One HVP by double backprop: d/dX <d g/dX, v>."""
    Xg = X.detach().clone().requires_grad_(True)
    g = target_logprob(model, Xg, target_id)
    (grad,) = torch.autograd.grad(g, Xg, create_graph=True)
    (hv,) = torch.autograd.grad((grad * v.to(grad.dtype)).sum(), Xg)
    return hv.detach()


def forward_with_values(model, X, **kwargs):
    """(model output with attentions, {layer: V (n, H_kv, hd)}, per-layer (module, take_v, W_heads))."""
    captured = {}
    handles = []
    specs = [_value_and_out(model, layer) for layer in _layers(model)]
    for l, (mod, take_v, _W) in enumerate(specs):
        handles.append(mod.register_forward_hook(lambda m, i, o, l=l, tv=take_v: captured.__setitem__(l, tv(o))))
    try:
        with torch.no_grad():
            out = model(inputs_embeds=X[None], output_attentions=True, use_cache=False, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return out, captured, specs


def reference_gate(model, X):
    n = X.shape[0]
    p = n - 1
    cfg = model.config
    H = cfg.num_attention_heads
    Hkv = getattr(cfg, "num_key_value_heads", None) or H
    layers = _layers(model)
    out, captured, specs = forward_with_values(model, X)
    attentions = out.attentions
    assert len(attentions) == len(layers)
    torch.set_grad_enabled(False)
    I = torch.eye(n, dtype=torch.float64)
    R = I.clone()
    M = torch.zeros(n, dtype=torch.float64)
    for l in range(len(layers)):
        A = attentions[l][0].double()
        V = captured[l].double()
        W_heads = specs[l][2].double()
        A_hats = []
        for h in range(H):
            A_hat = 0.5 * A[h] + 0.5 * I
            A_hat = A_hat / A_hat.sum(dim=1, keepdim=True)
            A_hats.append(A_hat)
            full = A_hat @ R  # the plain way: the whole product, then row p
            phi = full[p, :]
            kv = h // (H // Hkv)
            for i in range(n):
                v_strength = (V[i, kv, :] @ W_heads[h]).abs().sum()
                M[i] += phi[i] * v_strength
        R = torch.stack(A_hats).mean(0) @ R
    torch.set_grad_enabled(True)
    return M, out.logits[0, -1].double()


def _normalise(x, scored):
    x = torch.where(scored, x.clamp(min=0), torch.zeros_like(x))
    total = x.sum()
    if total <= 0:
        return scored.double() / scored.sum()
    return x / total


def reference_heta(model, input_ids, target_id, scored, *, estimator="block", num_probes=3, mask="zero", seed=0,
                   beta=0.5, gamma=0.5, combination="normalised", mask_embedding=None, gate="full"):
    """HETA as the spec writes it. gate: 'full' is the Component 1 rollout above; the declared
    variants ('last-quarter', 'norm-mixing') come from tests/reference/gate_variants.py."""
    input_ids = torch.as_tensor(input_ids)
    scored = torch.as_tensor(scored, dtype=torch.bool).cpu()
    with torch.no_grad():
        X = model.get_input_embeddings()(input_ids).detach()
    n, d = X.shape
    M_raw, logits = reference_gate(model, X)
    if gate != "full":
        from .gate_variants import reference_gate_variant  # it imports this module

        M_raw = reference_gate_variant(model, X, gate)

    g = torch.Generator().manual_seed(seed)
    R = (torch.randint(0, 2, (num_probes, n, d), generator=g) * 2 - 1).to(X.dtype)
    S_raw = torch.zeros(n, dtype=torch.float64)
    if estimator == "block":
        for i in range(n):
            if not scored[i]:
                continue
            total = 0.0
            for k in range(num_probes):
                r = torch.zeros(n, d, dtype=X.dtype)
                r[i] = R[k, i]
                Hr = reference_hvp(model, X, target_id, r)
                total += Hr[i].double().abs().sum().item()
            S_raw[i] = total / num_probes
    else:
        acc = torch.zeros(n, d, dtype=torch.float64)
        for k in range(num_probes):
            Hr = reference_hvp(model, X, target_id, R[k])
            acc += R[k].double() * Hr.double()
        for i in range(n):
            if scored[i]:
                S_raw[i] = (acc[i] / num_probes).abs().sum()

    logP = torch.log_softmax(logits, dim=-1)
    I_raw = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        if not scored[i]:
            continue
        if mask == "delete":
            Xm = torch.cat([X[:i], X[i + 1:]])
        else:
            Xm = X.clone()
            if mask == "zero":
                Xm[i] = 0
            elif mask == "mean":
                Xm[i] = X.mean(0)
            elif mask == "pad":
                Xm[i] = mask_embedding
        with torch.no_grad():
            logits_m = model(inputs_embeds=Xm[None], use_cache=False).logits[0, -1].double()
        logQ = torch.log_softmax(logits_m, dim=-1)
        I_raw[i] = (logP.exp() * (logP - logQ)).sum()

    Mn = _normalise(M_raw, scored)
    Sn, In = _normalise(S_raw, scored), _normalise(I_raw, scored)
    if combination == "normalised":
        attr = Mn * (beta * Sn + gamma * In)
    else:
        attr = Mn * (beta * torch.where(scored, S_raw, 0.0) + gamma * torch.where(scored, I_raw.clamp(min=0), 0.0))
    attr = torch.where(scored, attr, torch.zeros_like(attr))
    with torch.no_grad():
        logp = target_logprob(model, X, target_id).item()
    return {"M_raw": M_raw, "M": Mn, "S_raw": S_raw, "S": Sn, "I_raw": I_raw, "I": In, "attr": attr, "logp": logp}
