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


def test_aopc_is_the_mean_drop():
    from heta_lite.faithfulness.metrics import aopc

    assert aopc([0.1, 0.2, 0.6]) == pytest.approx(0.3)
    assert math.isnan(aopc([]))


def test_random_subsets_are_seeded_scored_and_distinct():
    from heta_lite.faithfulness.metrics import random_subsets

    scored = np.array([False, True, True, True, True, False, True])
    a = random_subsets(scored, [1, 3], draws=5, seed=0)
    assert a == random_subsets(scored, [1, 3], draws=5, seed=0)
    assert all(len(r) == k and len(set(r)) == k and all(scored[r]) for k in (1, 3) for r in a[k])
    assert len(a[1]) == 5


def test_segment_mask_and_dsa_uniform_by_hand():
    from heta_lite.faithfulness.metrics import dsa_uniform, segment_mask

    spans = [(0, 4), (4, 9), (9, 10), (10, 15), (15, 20)]
    assert segment_mask(spans, (4, 10)).tolist() == [False, True, True, False, False]
    scored = np.array([False, True, True, True, True])  # token 0 (e.g. BOS) unscored
    # evidence = tokens 3, 4 (2 of 4 scored), distractor = token 1 (1 of 4): (2 - 1) / 4
    assert dsa_uniform(scored, spans, evidence=(10, 20), distractor=(4, 9)) == pytest.approx(0.25)


def test_ratio_undefined_for_zero_reference():
    from heta_lite.faithfulness.metrics import ratio

    assert ratio(0.5, 0.25) == 2 and ratio(1.0, 0.0) is None


def test_deletion_reuses_precomputed_random_drops(setup):
    from heta_lite.faithfulness.metrics import deletion_random

    lm, X = setup
    scored = np.ones(10, dtype=bool)
    scores = np.linspace(1, 0, 10)
    ks = [1, 2, 5]
    rnd = deletion_random(lm, X, 4, scored, "zero", ks, random_draws=5, seed=3)
    a = deletion(lm, X, 4, scores, scored, mode="zero", ks=ks, random_draws=5, seed=3)
    b = deletion(lm, X, 4, scores, scored, mode="zero", ks=ks, random_draws=5, seed=3, random=rnd)
    assert a.drop_random == pytest.approx(b.drop_random) and a.drop_top == pytest.approx(b.drop_top, abs=1e-12)
    # random drop for k = 1 is the mean over the 5 single-token removals
    from heta_lite.faithfulness.metrics import random_subsets

    p0 = _p(lm, X, 4)
    subs = random_subsets(scored, ks, 5, 3)[1]
    expect = np.mean([p0 - _p(lm, remove_tokens(X, r, "zero"), 4) for r in subs])
    assert a.drop_random[0] == pytest.approx(expect, rel=1e-3, abs=1e-9)


def test_sufficiency_random_averages_random_keep_sets(setup):
    from heta_lite.faithfulness.metrics import random_subsets, sufficiency_random

    lm, X = setup
    scored = np.ones(10, dtype=bool)
    got = sufficiency_random(lm, X, 3, scored, ks=[2], draws=3, seed=0)
    expect = []
    for keep in random_subsets(scored, [2], 3, 1)[2]:
        Xk = torch.zeros_like(X)
        Xk[keep] = X[keep]
        expect.append(_p(lm, Xk, 3))
    assert got[2] == pytest.approx(np.mean(expect), rel=2e-4)


def test_soft_metrics_zero_scores_change_nothing_for_ns_and_everything_for_nc(setup):
    lm, X = setup
    scored = np.ones(10, dtype=bool)
    # all scores 0: NS masks every scored token (S = S0, Soft-NS = 0); NC keeps all (C = 0)
    m = soft_metrics(lm, X, np.zeros(10), scored, draws=2)
    assert m["soft_ns"] == pytest.approx(0.0, abs=1e-9) and m["C"] == pytest.approx(0.0, abs=1e-9)


def test_permuted_scores_keep_the_distribution_and_zero_unscored():
    from heta_lite.faithfulness.metrics import permuted_scores

    s = np.array([0.0, 5.0, 1.0, 2.0, 3.0])
    sc = np.array([False, True, True, True, True])
    a = permuted_scores(s, sc, seed=1)
    assert a[0] == 0 and sorted(a[1:]) == [1.0, 2.0, 3.0, 5.0]
    assert np.array_equal(a, permuted_scores(s, sc, seed=1))


def test_delete_mode_never_removes_every_token(setup):
    """A context whose tokens are all scored (a short plain prompt): 'delete' stops at n - 1,
    'zero' may zero them all; the random baseline uses the same k's as the top-k curve."""
    from heta_lite.faithfulness.metrics import removable_ks

    lm, X = setup
    X5 = X[:5]
    scored = np.ones(5, dtype=bool)
    scores = np.arange(5.0)
    assert removable_ks([1, 2, 3, 5], 5, "delete") == [1, 2, 3]
    assert removable_ks([1, 2, 3, 5], 5, "zero") == [1, 2, 3, 5]
    d = deletion(lm, X5, 7, scores, scored, mode="delete", ks=[1, 2, 3, 5], random_draws=2)
    assert d.ks == [1, 2, 3] and len(d.drop_top) == len(d.drop_random) == 3
    assert d.drop_top[2] == pytest.approx(d.p_full - _p(lm, X5[:2], 7), rel=2e-4, abs=1e-9)
    z = deletion(lm, X5, 7, scores, scored, mode="zero", ks=[1, 2, 3, 5], random_draws=2)
    assert z.ks == [1, 2, 3, 5]
    assert z.drop_top[3] == pytest.approx(z.p_full - _p(lm, torch.zeros_like(X5), 7), rel=2e-4, abs=1e-9)
