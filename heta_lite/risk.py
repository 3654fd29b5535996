"""Failure risk (issue #17): the probability that the model's answer is wrong, from signals every
explanation already computes, by a small logistic model fitted per model on a labelled set
(`python -m experiments.failure_risk`, coefficients shipped in heta_lite/data/failure_risk.json
with the accuracy and AUC it reached on held-out questions; docs/method.md "Failure risk").

Features (FEATURES, in this order): the target's entropy (nats) and margin (p1 - p2) at the
predicting position, the logit lens's settling depth (heta_lite/anomaly.py), the final score's share
on punctuation tokens and on the first content token, and the faithfulness check's verdict.
"""
from __future__ import annotations

import math
import unicodedata
from typing import Any

import numpy as np
import torch

from .data import shipped_json

FEATURES = ("entropy", "margin", "lens_settle", "punct_share", "first_content_share", "check_passed")


def is_punctuation(text: str) -> bool:
    t = text.strip()
    return bool(t) and all(unicodedata.category(c).startswith("P") for c in t)


def target_entropy_margin(logits: torch.Tensor) -> tuple[float, float]:
    logp = torch.log_softmax(logits.double(), -1)
    p = logp.exp()
    top2 = p.topk(2).values
    return float(-(p * logp).sum()), float(top2[0] - top2[1])


def features(entropy: float, margin: float, lens_settle: float, token_texts: list[str], normalised: np.ndarray,
             scored: np.ndarray, first_content: int | None, check_passed: bool | None) -> dict[str, float]:
    punct = [i for i, t in enumerate(token_texts) if scored[i] and is_punctuation(t)]
    return {"entropy": entropy, "margin": margin, "lens_settle": lens_settle,
            "punct_share": float(np.sum(normalised[punct])) if punct else 0.0,
            "first_content_share": float(normalised[first_content]) if first_content is not None else 0.0,
            "check_passed": float(bool(check_passed)) if check_passed is not None else 0.5}


def _fitted() -> dict[str, Any]:
    return shipped_json("failure_risk.json")


def predict(model: dict[str, Any], feats: dict[str, float]) -> float:
    """p(wrong) of a fitted logistic model: standardised features, then sigmoid(w . z + b)."""
    z = [(feats[k] - model["mean"][i]) / model["std"][i] for i, k in enumerate(model["features"])]
    t = float(np.dot(model["weights"], z) + model["bias"])
    return 1.0 / (1.0 + math.exp(-t)) if t > -700 else 0.0


def failure_risk(model_name: str, feats: dict[str, float], target_rank: int = 1) -> dict[str, Any]:
    """{'p_wrong', 'features', 'calibrated', and the fitted model's measured accuracy/AUC}. The
    model was fitted on the model's own answers (its top choice), so a target the model would not
    have picked (rank > 1, e.g. a teacher-forced prompt token) gets no risk: "the answer is wrong"
    would not mean what it says there."""
    fitted = _fitted().get("models", {}).get(model_name)
    out: dict[str, Any] = {"features": feats, "calibrated": fitted is not None}
    if target_rank != 1:
        out.update(p_wrong=None, note=f"not shown: the risk is about the model's own answer (its top choice), and "
                                      f"this target is the model's choice number {target_rank} at its position")
        return out
    if fitted is None:
        out.update(p_wrong=None, note="no failure-risk model fitted for this model "
                   "(python -m experiments.failure_risk --model NAME)")
        return out
    out.update(p_wrong=predict(fitted, feats), test_accuracy=fitted["test"]["accuracy"],
               test_auc=fitted["test"]["auc"], fitted_on=fitted["fitted_on"])
    return out
