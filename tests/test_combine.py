"""Combination, normalisation, percentiles and ranks against independent numpy computations."""
import numpy as np
import pytest

from heta_lite.combine import combine, normalise_scored, percentiles, ranks
from heta_lite.settings import HetaSettings


def test_normalise_scored_excludes_unscored_and_clamps():
    x = np.array([5.0, -1.0, 1.0, 3.0])
    scored = np.array([False, True, True, True])
    out = normalise_scored(x, scored)
    assert out[0] == 0 and out[1] == 0
    assert out[2:] == pytest.approx([0.25, 0.75])


def test_normalise_scored_uniform_when_all_zero():
    out = normalise_scored(np.zeros(4), np.array([True, False, True, True]))
    assert out == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])


def test_combine_normalised_and_raw_follow_the_formula():
    rng = np.random.default_rng(0)
    M, S, I = rng.random(6), rng.random(6) * 10, rng.random(6) * 0.1
    scored = np.array([False, True, True, True, True, True])
    s = HetaSettings(beta=0.3, gamma=0.7)
    c = combine(M, S, I, scored, s)
    m = np.where(scored, M, 0) / M[scored].sum()
    sn = np.where(scored, S, 0) / S[scored].sum()
    i_n = np.where(scored, I, 0) / I[scored].sum()
    assert c.attr == pytest.approx(m * (0.3 * sn + 0.7 * i_n))
    raw = combine(M, S, I, scored, s.replace(combination="raw"))
    assert raw.attr == pytest.approx(m * (0.3 * np.where(scored, S, 0) + 0.7 * np.where(scored, I, 0)))


def test_percentiles_match_numpy_definition():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=40).astype(float)  # many ties
    scored = rng.random(40) > 0.2
    pct = percentiles(scores, scored)
    ref = scores[scored]
    for i in range(40):
        if scored[i]:
            assert pct[i] == pytest.approx(100.0 * np.mean(ref <= scores[i]))
        else:
            assert np.isnan(pct[i])


def test_ranks_match_stable_argsort():
    scores = np.array([0.1, 0.5, 0.5, 0.0, 0.9])
    scored = np.array([True, True, True, False, True])
    r = ranks(scores, scored)
    idx = np.flatnonzero(scored)
    expected = idx[np.argsort(-scores[idx], kind="stable")]
    assert [int(np.flatnonzero(r == k + 1)[0]) for k in range(len(idx))] == list(expected)
    assert r[3] == 0
