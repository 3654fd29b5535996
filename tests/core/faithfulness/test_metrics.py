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


def test_bootstrap_ci_on_known_cases():
    # constant values: every resample has the same mean
    assert bootstrap_ci([0.3] * 7) == pytest.approx((0.3, 0.3, 0.3))
    # two values {0, 1}: resample means are 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so the
    # 2.5% / 97.5% percentiles are the extremes; None and NaN are dropped before resampling
    assert bootstrap_ci([0.0, None, 1.0, float("nan")]) == (0.5, 0.0, 1.0)
    # 100 coin flips, 50 heads: the 95% interval is the normal one, 0.5 +- 1.96 * sqrt(0.25 / 100)
    m, lo, hi = bootstrap_ci([1.0] * 50 + [0.0] * 50, n_boot=4000)
    half = 1.96 * math.sqrt(0.25 / 100)
    assert m == 0.5 and lo == pytest.approx(0.5 - half, abs=0.02) and hi == pytest.approx(0.5 + half, abs=0.02)
    assert all(math.isnan(x) for x in bootstrap_ci([None, float("nan")]))


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


# ---------------------------------------------------------------- Soft-NS / Soft-NC, graded scores
def _record(monkeypatch, logprobs_of):
    """Replace the metrics' forward by `logprobs_of(seq) -> (V,) log-probs` and record its inputs."""
    import heta_lite.faithfulness.metrics as metrics

    seen: list[torch.Tensor] = []

    def fake(lm, seqs, batch=16):
        seen.extend(s.clone() for s in seqs)
        return torch.stack([logprobs_of(s) for s in seqs])

    monkeypatch.setattr(metrics, "last_logprobs", fake)
    return seen


def test_soft_metrics_keep_token_j_with_probability_s_j_and_never_touch_unscored(monkeypatch):
    """s = scores / max over scored tokens: NS keeps token j's elements with frequency s_j, NC with
    1 - s_j; unscored tokens (here with the largest raw scores) are never perturbed. Counted on
    the embedding sequences the metric feeds to the model (a stub that records them)."""
    n, d, draws = 6, 4000, 10
    X = 1.0 + torch.rand(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # no zeros
    scored = np.array([False, True, True, True, True, False])
    scores = np.array([100.0, 2.0, 1.0, 0.5, 0.0, 7.0])
    s = np.array([0.0, 1.0, 0.5, 0.25, 0.0, 0.0])  # by hand: 2, 1, 0.5, 0 over max 2
    seen = _record(monkeypatch, lambda seq: torch.log_softmax(seq[:, :5].sum(0), -1))
    soft_metrics(None, X, scores, scored, draws=draws, seed=0)
    assert len(seen) == 2 + 2 * draws
    for seq in seen:  # every element is either X's own value or exactly 0; unscored rows untouched
        assert torch.all((seq == X) | (seq == 0))
        assert torch.equal(seq[~torch.tensor(scored)], X[~torch.tensor(scored)])
    assert torch.equal(seen[0], X)
    assert torch.equal(seen[1][torch.tensor(scored)], torch.zeros(4, d, dtype=X.dtype))  # all scored masked
    perturbed = seen[2:]
    # NS keeps the s = 1 token whole, NC drops it whole: tell them apart by content, not by order
    ns = [q for q in perturbed if torch.equal(q[1], X[1])]
    nc = [q for q in perturbed if torch.all(q[1] == 0)]
    assert len(ns) == len(nc) == draws
    freq_ns = torch.stack([(q == X).double().mean(-1) for q in ns]).mean(0).numpy()
    freq_nc = torch.stack([(q == X).double().mean(-1) for q in nc]).mean(0).numpy()
    np.testing.assert_allclose(freq_ns[scored], s[scored], atol=0.015)  # binomial sd <= 0.0025
    np.testing.assert_allclose(freq_nc[scored], 1 - s[scored], atol=0.015)
    assert freq_ns[1] == 1 and freq_ns[4] == 0 and freq_nc[1] == 0 and freq_nc[4] == 1  # exact at 0 and 1


@pytest.mark.parametrize("scores,ns_positive", [
    ([5.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.5, 0.5, 1.0, 1.0], True),
    ([5.0, 0.9, 0.1, 0.6, 0.0, 0.3, 1.2, 0.2, 0.05, 0.8], False),  # S < S0: Soft-NS clamps at 0
])
def test_soft_metrics_formulas_with_graded_scores(setup, monkeypatch, scores, ns_positive):
    """S, C, S0, Soft-NS and Soft-NC from the spec's formulas, evaluated by hand (float64 numpy) on
    the tiny model's own distributions for the sequences the metric built."""
    lm, X = setup
    scored = np.ones(10, dtype=bool)
    scored[0] = False
    scores = np.array(scores)

    def probs(seq):
        with torch.no_grad():
            return torch.log_softmax(lm.model(inputs_embeds=seq[None]).logits[0, -1].double(), -1)

    seen = _record(monkeypatch, probs)
    m = soft_metrics(lm, X, scores, scored, draws=4, seed=1)
    P = [probs(q).exp().numpy() for q in seen]

    def D(p, q):
        return float(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / np.sqrt(2))

    Xm = X.clone()
    Xm[1:] = 0  # every scored token masked, the unscored one kept
    p, p_all = P[0], probs(Xm).exp().numpy()
    top = int(np.argmax(np.where(scored, scores, 0)))  # s = 1: kept whole by NS, dropped whole by NC
    ns = [P[k] for k in range(2, len(seen)) if torch.equal(seen[k][top], X[top])]
    nc = [P[k] for k in range(2, len(seen)) if torch.all(seen[k][top] == 0)]
    assert len(ns) == len(nc) == 4
    S0 = 1 - D(p, p_all)
    S = 1 - np.mean([D(p, q) for q in ns])
    C = np.mean([D(p, q) for q in nc])
    assert (S > S0) == ns_positive and C > 0 and 0 < S0 < 1
    assert m["S0"] == pytest.approx(S0, rel=1e-9) and m["S"] == pytest.approx(S, rel=1e-9)
    assert m["C"] == pytest.approx(C, rel=1e-9)
    assert m["soft_ns"] == pytest.approx(max(0.0, S - S0) / (1 - S0), rel=1e-9, abs=1e-12)
    assert m["soft_nc"] == pytest.approx(C / (1 - S0), rel=1e-9)
