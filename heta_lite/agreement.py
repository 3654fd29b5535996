"""Rank agreement of two attributions of the same prediction (quantized vs unquantized, preset vs
preset, seed vs seed, method vs method): Spearman, Kendall tau-b (scipy, ties averaged) and top-k
overlap. The one copy: quant/ (the quantization study), experiments/ and the GUI use it. Only
scored tokens are compared: unscored positions are zero in both and would inflate every rank
statistic."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

TOP_KS = (5, 10)


@dataclass
class Agreement:
    """spearman / kendall: rank correlations (Kendall's tau-b, ties handled); top5 / top10: overlap
    |top-k(a) & top-k(b)| / k of the two top-k sets (k capped at the number of scored tokens)."""

    n: int
    spearman: float
    kendall: float
    top5: float
    top10: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """|top-k(a) & top-k(b)| / k; ties broken by position (stable), so the result is deterministic."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    k = min(k, len(a))
    if k == 0:
        return float("nan")
    ta = set(np.argsort(-a, kind="stable")[:k].tolist())
    tb = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(ta & tb) / k


def _corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")  # a constant ranking has no order to agree with
    return float(fn(a, b).statistic)


def spearman(a, b) -> float:
    """Spearman rank correlation (ties get their average rank); NaN when either ranking is constant."""
    return _corr(stats.spearmanr, np.asarray(a, float), np.asarray(b, float))


def kendall(a, b) -> float:
    """Kendall's tau-b (ties handled); NaN when either ranking is constant."""
    return _corr(stats.kendalltau, np.asarray(a, float), np.asarray(b, float))


def agreement(a, b, scored=None) -> Agreement:
    """Agreement of score vectors a and b (same positions); `scored` selects the compared positions."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"attributions have different lengths: {a.shape} vs {b.shape}")
    if scored is not None:
        keep = np.asarray(scored, bool)
        a, b = a[keep], b[keep]
    return Agreement(n=len(a), spearman=spearman(a, b), kendall=kendall(a, b),
                     top5=top_k_overlap(a, b, 5), top10=top_k_overlap(a, b, 10))
