"""HETA's combination and normalisation against independent numpy computations."""
import numpy as np
import pytest

from heta_lite.methods.heta.combine import combine, normalise_scored
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
