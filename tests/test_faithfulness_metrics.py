"""Metrics on hand-checkable cases."""
import math

import numpy as np
import pytest
import torch

from heta_lite.faithfulness.metrics import (bootstrap_ci, deletion, dsa, hellinger_like, k_values, remove_tokens,
                                            soft_metrics, sufficiency, top_k)
from heta_lite.models import wrap_model
from tests.reference.tiny import tiny_gpt2


def test_k_values():
    assert k_values(4) == [1, 2, 3]
    assert k_values(40) == [1, 2, 3, 4, 5, 8, 12]


def test_top_k_skips_unscored_and_breaks_ties_by_position():
    s = np.array([9.0, 1.0, 3.0, 3.0, 0.5])
    sc = np.array([False, True, True, True, True])
    assert top_k(s, sc, 2) == [2, 3]


def test_remove_tokens_modes():
    X = torch.arange(12.0).view(4, 3)
    assert remove_tokens(X, [1, 3], "delete").tolist() == [[0, 1, 2], [6, 7, 8]]
    Z = remove_tokens(X, [0], "zero")
    assert Z[0].abs().sum() == 0 and torch.equal(Z[1:], X[1:])


def test_hellinger_like_values():
    p = torch.tensor([1.0, 0.0])
    q = torch.tensor([0.0, 1.0])
    assert float(hellinger_like(p, p)) == 0
    assert float(hellinger_like(p, q)) == pytest.approx(2 / math.sqrt(2))


def test_dsa_uses_offsets():
    spans = [(0, 3), (3, 8), (8, 12), (12, 12)]  # last token empty (e.g. a byte piece)
    w = np.array([0.1, 0.5, 0.4, 0.0])
    assert dsa(w, spans, evidence=(3, 12), distractor=(0, 3)) == pytest.approx(0.9 - 0.1)


def test_bootstrap_ci_contains_mean():
    m, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and lo <= m <= hi and lo >= 1 and hi <= 4


@pytest.fixture(scope="module")
def setup():
    lm = wrap_model(tiny_gpt2())
    X = lm.model.get_input_embeddings()(torch.arange(5, 15)).detach()
    return lm, X


def _p(lm, X, y):
    return float(torch.softmax(lm.model(inputs_embeds=X[None]).logits[0, -1].double(), -1)[y])


def test_deletion_against_direct_forwards(setup):
    lm, X = setup
    y = 7
    scored = np.ones(10, dtype=bool)
    scores = np.linspace(1, 0, 10)  # top-k = the first k tokens
    res = deletion(lm, X, y, scores, scored, mode="delete", ks=[1, 3], random_draws=2, seed=0)
    p0 = _p(lm, X, y)
    assert res.p_full == pytest.approx(p0, rel=2e-4)
    assert res.drop_top[1] == pytest.approx(p0 - _p(lm, X[3:], y), rel=2e-4, abs=1e-9)
    assert res.aopc_top == pytest.approx(np.mean(res.drop_top))
    z = deletion(lm, X, y, scores, scored, mode="zero", ks=[2], random_draws=2)
    Xz = X.clone()
    Xz[:2] = 0
    assert z.drop_top[0] == pytest.approx(p0 - _p(lm, Xz, y), rel=2e-4, abs=1e-9)


def test_sufficiency_keeps_only_top_k(setup):
    lm, X = setup
    scored = np.ones(10, dtype=bool)
    scores = np.arange(10.0)  # top-2 = tokens 9 and 8
    got = sufficiency(lm, X, 3, scores, scored, ks=[2])
    Xk = torch.zeros_like(X)
    Xk[8:] = X[8:]
    assert got[2] == pytest.approx(_p(lm, Xk, 3), rel=2e-4)


def test_soft_metrics_extremes(setup):
    lm, X = setup
    scored = np.ones(10, dtype=bool)
    # all scores equal to the max: NS keeps everything (S = 1), NC drops everything (C = 1 - S0)
    m = soft_metrics(lm, X, np.ones(10), scored, draws=2)
    assert m["S"] == pytest.approx(1.0, abs=1e-9)
    assert m["C"] == pytest.approx(1 - m["S0"], abs=1e-9)
    assert m["soft_ns"] == pytest.approx(1.0) and m["soft_nc"] == pytest.approx(1.0)
