"""Failure risk (issue #17): features, the logistic model and its evaluation against brute force."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from experiments.failure_risk import auc, build_items, fit, is_right, prompt_of
from heta_lite import risk
from heta_lite.risk import FEATURES, failure_risk, features, is_punctuation, predict, target_entropy_margin


def test_entropy_and_margin_against_float64_by_hand():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    p = np.exp(logits.double().numpy()) / np.exp(logits.double().numpy()).sum()
    H, m = target_entropy_margin(logits)
    assert H == pytest.approx(float(-(p * np.log(p)).sum())) and m == pytest.approx(p[0] - p[1])


def test_features_read_punctuation_and_first_content_shares():
    texts = ["<|endoftext|>", "The", " cat", ",", " sat", " ."]
    scored = np.array([False, True, True, True, True, True])
    norm = np.array([0.0, 0.1, 0.4, 0.2, 0.2, 0.1])
    f = features(1.5, 0.2, 0.5, texts, norm, scored, 1, True)
    assert f["punct_share"] == pytest.approx(0.3) and f["first_content_share"] == pytest.approx(0.1)
    assert f["check_passed"] == 1.0 and list(f) == list(FEATURES)
    assert is_punctuation(" .") and is_punctuation("?!") and not is_punctuation(" a.") and not is_punctuation(" ")


def test_auc_equals_the_pairwise_count():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40).astype(float)
    s = rng.normal(size=40) + y
    pairs = [(i, j) for i, j in itertools.product(range(40), range(40)) if y[i] == 1 and y[j] == 0]
    brute = np.mean([1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0 for i, j in pairs])
    assert auc(y, s) == pytest.approx(brute)


def test_fit_recovers_the_direction_and_predict_is_its_sigmoid():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = (rng.random(400) < 1 / (1 + np.exp(-(2 * X[:, 0] - 1.5 * X[:, 2])))).astype(float)
    w, b, mean, std = fit(X, y)
    assert w[0] > 1.0 and w[2] < -0.8 and abs(w[1]) < 0.4
    model = {"features": ["a", "b", "c"], "weights": list(w), "bias": b, "mean": list(mean), "std": list(std)}
    x = {"a": 0.3, "b": -1.0, "c": 2.0}
    z = (np.array([0.3, -1.0, 2.0]) - mean) / std
    assert predict(model, x) == pytest.approx(1 / (1 + np.exp(-(z @ w + b))))


def test_uncalibrated_models_get_no_probability(monkeypatch):
    monkeypatch.setattr(risk, "_fitted", lambda: {"models": {}})
    out = failure_risk("some-model", {k: 0.0 for k in FEATURES})
    assert out["p_wrong"] is None and not out["calibrated"] and "no failure-risk model" in out["note"]


def test_a_target_the_model_would_not_pick_gets_no_risk():
    """The risk was fitted on the model's own answers: for a rank-2 teacher-forced token "the answer is
    wrong" means nothing, so no probability is given, and the note says why."""
    feats = {k: 0.0 for k in FEATURES}
    own = failure_risk("smollm2-135m", feats, target_rank=1)
    other = failure_risk("smollm2-135m", feats, target_rank=2)
    assert own["p_wrong"] is not None and other["p_wrong"] is None
    assert other["calibrated"] and "choice number 2" in other["note"]


def test_questions_never_contain_their_answers_and_grading_needs_a_whole_word():
    items = build_items()
    assert len(items) >= 150 and len({it["id"] for it in items}) == len(items)
    for it in items:
        assert not is_right(it["answer"], prompt_of(it)), it
    assert is_right("Paris", " Paris, of course") and not is_right("Rome", " Romeo") and is_right("12", " 12.")
