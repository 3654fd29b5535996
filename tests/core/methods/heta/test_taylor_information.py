"""The Taylor estimate of the information gain I (`information_taylor`, the 'fast' preset).

Two independent references on a float64 tiny GPT-2 (LayerNorm: a true float64 model when cast):
(a) the exact KL(P || P_masked) from plain masked forwards, for displacements small enough that
    the second-order expansion is accurate: its relative error must shrink linearly with the
    displacement (KL = 0.5 Var_P(J delta) + O(|delta|^3));
(b) 0.5 Var_P(J delta) written out by hand, with J delta from central finite differences of the
    logits (no autograd) and P renormalised over the top-T tokens, as the docstring says.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from heta_lite.methods.heta import information
from heta_lite.methods.heta.curvature import TargetGraph
from heta_lite.models import wrap_model
from heta_lite.settings import HetaSettings
from tests.reference.tiny import tiny_gpt2

IDS = torch.tensor([5, 9, 17, 3, 40, 22, 11])
Y = 13
VOCAB = 64


@pytest.fixture(scope="module")
def setup():
    lm = wrap_model(tiny_gpt2(torch.float64))
    X = lm.model.get_input_embeddings()(IDS).detach()
    assert X.dtype == torch.float64
    return lm, X, TargetGraph(lm.model, X, Y)


def _logits(lm, X):
    with torch.no_grad():
        return lm.model(inputs_embeds=X[None], use_cache=False).logits[0, -1]


def _exact_kl(lm, X, i, replacement):
    """KL(P || Q) in float64 from two plain forwards, token i's embedding replaced."""
    Xm = X.clone()
    Xm[i] = replacement
    lp, lq = torch.log_softmax(_logits(lm, X), -1), torch.log_softmax(_logits(lm, Xm), -1)
    return float((lp.exp() * (lp - lq)).sum())


def test_taylor_matches_the_exact_kl_to_second_order(setup, monkeypatch):
    """Full vocabulary (the only approximation is Taylor's); token i is replaced by
    x_i + eps * D_i. The relative error goes down ~ eps: a factor 4 per factor 4 in eps."""
    lm, X, graph = setup
    n, d = X.shape
    D = torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    D = D / D.norm(dim=-1, keepdim=True) * X.norm(dim=-1, keepdim=True)  # |D_i| = |x_i|
    scored = torch.ones(n, dtype=torch.bool)
    settings = HetaSettings(information="taylor", taylor_vocab=VOCAB, probe_batch=16)
    worst = []
    for eps in (0.04, 0.01, 0.0025):
        # a per-token mask close to each x_i: information_taylor's displacement is mask - X = eps * D
        monkeypatch.setattr(information, "mask_vector", lambda lm_, X_, scheme, eps=eps: X_.detach() + eps * D)
        taylor = information.information_taylor(lm, X, graph, scored, settings).numpy()
        exact = np.array([_exact_kl(lm, X, i, X[i] + eps * D[i]) for i in range(n)])
        assert (exact > 0).all()
        worst.append(float(np.max(np.abs(taylor - exact) / exact)))
    assert worst[-1] < 0.03, worst
    for coarse, fine in zip(worst, worst[1:]):
        assert 2.5 < coarse / fine < 6.5, worst  # linear in eps: ~4


def _by_hand(lm, X, scored, T, mask_rows, h=1e-5):
    """0.5 * (sum_v w_v dl_v^2 - (sum_v w_v dl_v)^2) over the top-T tokens of P, w = P renormalised
    over them, dl = J_i delta_i by central differences of the logits along delta_i."""
    P = torch.softmax(_logits(lm, X), -1).numpy()
    top = np.argsort(-P, kind="stable")[:T]
    w = P[top] / P[top].sum()
    out = np.zeros(X.shape[0])
    for i in range(X.shape[0]):
        if not scored[i]:
            continue
        delta = mask_rows[i] - X[i]
        Xp, Xm = X.clone(), X.clone()
        Xp[i] += h * delta
        Xm[i] -= h * delta
        dl = ((_logits(lm, Xp) - _logits(lm, Xm)) / (2 * h)).numpy()[top]
        out[i] = 0.5 * (np.sum(w * dl ** 2) - np.sum(w * dl) ** 2)
    return out


@pytest.mark.parametrize("mask,T", [("zero", 5), ("zero", VOCAB), ("mean", 7)])
def test_taylor_is_half_the_variance_of_the_logit_change_over_the_top_tokens(setup, mask, T):
    lm, X, graph = setup
    n = X.shape[0]
    scored = torch.ones(n, dtype=torch.bool)
    scored[2] = False
    settings = HetaSettings(information="taylor", taylor_vocab=T, probe_batch=3, mask=mask)  # 3: batches + a remainder
    got = information.information_taylor(lm, X, graph, scored, settings).numpy()
    rows = torch.zeros_like(X) if mask == "zero" else X.mean(0).expand_as(X)
    expected = _by_hand(lm, X, scored.numpy(), T, rows)
    assert got[2] == 0 and expected[scored.numpy()].min() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


def test_taylor_with_one_token_has_no_variance(setup):
    """T = 1: the renormalised weight is 1 on the top token, so Var = 0 for every token."""
    lm, X, graph = setup
    got = information.information_taylor(lm, X, graph, torch.ones(X.shape[0], dtype=torch.bool),
                                         HetaSettings(information="taylor", taylor_vocab=1))
    assert np.abs(got.numpy()).max() < 1e-12
