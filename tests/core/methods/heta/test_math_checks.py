"""Independent checks of the math: HVPs against finite differences and an explicit Hessian
(float64), GQA value norms by hand, KL against float64, probes seeded."""
import numpy as np
import pytest
import torch

from heta_lite.methods.heta.curvature import TargetGraph, rademacher_probes
from heta_lite.methods.heta.information import kl_from_logits
from heta_lite.methods.logprob import target_logprob
from heta_lite.models import wrap_model
from tests.reference.tiny import tiny_gpt2, tiny_qwen2


@pytest.fixture(scope="module")
def gpt2_f64():
    return tiny_gpt2(torch.float64)


def _x(model, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 64, (n,), generator=g)
    return model.get_input_embeddings()(ids).detach()


def test_hvp_matches_finite_differences_float64(gpt2_f64):
    X = _x(gpt2_f64, 6)
    y = 11
    graph = TargetGraph(gpt2_f64, X, y)
    V = torch.randn(3, *X.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    HV = graph.hvp(V)

    def grad_at(Z):
        Z = Z.clone().requires_grad_(True)
        (gr,) = torch.autograd.grad(target_logprob(gpt2_f64, Z[None], y).sum(), Z)
        return gr

    eps = 1e-5
    for b in range(3):
        fd = (grad_at(X + eps * V[b]) - grad_at(X - eps * V[b])) / (2 * eps)
        rel = (fd - HV[b]).norm() / HV[b].norm()
        assert rel < 1e-6, rel


def test_hvp_matches_explicit_hessian(gpt2_f64):
    X = _x(gpt2_f64, 3, seed=2)
    y = 5
    n, d = X.shape
    Hfull = torch.autograd.functional.hessian(
        lambda flat: target_logprob(gpt2_f64, flat.view(1, n, d), y).sum(), X.reshape(-1))
    R = rademacher_probes(0, 4, n, d, X.dtype, "cpu")
    HV = TargetGraph(gpt2_f64, X, y).hvp(R)
    expected = (Hfull @ R.reshape(4, -1).T).T.reshape(4, n, d)
    torch.testing.assert_close(HV, expected, rtol=1e-9, atol=1e-12)
    # the Hessian is symmetric, so the batched HVP is too: u^T H v == v^T H u
    assert torch.allclose((R[0] * HV[1]).sum(), (R[1] * HV[0]).sum(), rtol=1e-10)


def test_batched_and_looped_hvps_agree():
    model = tiny_qwen2()
    model.requires_grad_(False)
    X = _x(model, 7)
    graph = TargetGraph(model, X, 3)
    R = rademacher_probes(4, 5, 7, X.shape[1], X.dtype, "cpu")
    batched = graph.hvp(R)
    graph.batched = False
    looped = graph.hvp(R)
    scale = looped.abs().max()
    torch.testing.assert_close(batched, looped, rtol=2e-4, atol=float(1e-5 * scale))  # float32 rounding


def test_probes_are_seeded_rademacher():
    a = rademacher_probes(0, 3, 4, 5, torch.float32, "cpu")
    b = rademacher_probes(0, 3, 4, 5, torch.float32, "cpu")
    c = rademacher_probes(1, 3, 4, 5, torch.float32, "cpu")
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) == {-1.0, 1.0}


def test_gqa_value_norms_by_hand():
    """v^{l,h}_i = ||V^{l,kv(h)}_i W_O^{l,h}||_1 computed from raw weights for every head."""
    model = tiny_qwen2()
    lm = wrap_model(model)
    X = _x(model, 5)
    attn = model.model.layers[1].self_attn
    seen = {}
    hook_in = attn.v_proj.register_forward_hook(lambda m, i, o: seen.update(x=i[0][0], v=o))
    with torch.no_grad():
        model(inputs_embeds=X[None], use_cache=False)
    hook_in.remove()
    H, Hkv, hd = 4, 2, 8
    Wv, bv, Wo = attn.v_proj.weight, attn.v_proj.bias, attn.o_proj.weight
    assert bv.abs().sum() > 0  # qkv bias present and non-zero
    # the engine's path: the arch table's view of the value output and of W_O
    V_engine = lm.arch.values_from_output(seen["v"], lm.dims)[0]  # (n, Hkv, hd)
    W_engine = lm.arch.out_weight_per_head(model.model.layers[1], lm.dims)  # (H, hd, d)
    kv_of = lm.dims.kv_index()
    assert kv_of.tolist() == [0, 0, 1, 1]
    for h in range(H):
        kv = h // (H // Hkv)
        for i in range(5):
            v_full = seen["x"][i] @ Wv.T + bv  # after the layer norm, bias included
            v_head = v_full[kv * hd:(kv + 1) * hd]
            write = v_head @ Wo[:, h * hd:(h + 1) * hd].T  # head h's slice of o_proj
            expected = write.abs().sum()
            got = (V_engine[i, kv_of[h]] @ W_engine[h]).abs().sum()
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)


def test_kl_matches_float64():
    g = torch.Generator().manual_seed(0)
    for scale in (0.1, 3.0, 20.0):
        lp = torch.randn(5000, generator=g) * scale
        lq = lp + torch.randn(4, 5000, generator=g) * 0.5
        got = kl_from_logits(torch.log_softmax(lp, -1), lq).numpy()
        p = np.exp(lp.double().numpy() - np.logaddexp.reduce(lp.double().numpy()))
        for b in range(4):
            q_log = lq[b].double().numpy() - np.logaddexp.reduce(lq[b].double().numpy())
            ref = np.sum(p * (np.log(p) - q_log))
            assert got[b] == pytest.approx(ref, rel=1e-4, abs=1e-6)
    # identical distributions: zero, never negative beyond rounding
    same = kl_from_logits(torch.log_softmax(lp, -1), lp[None])
    assert abs(float(same)) < 1e-5
