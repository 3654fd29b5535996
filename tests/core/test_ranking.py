"""Percentiles and ranks of scored tokens (heta_lite.ranking) against independent numpy computations."""
import numpy as np
import pytest

from heta_lite.ranking import percentiles, ranks


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
