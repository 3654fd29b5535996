"""Per-token statistics every report shows, the same for every method: percentile and rank among
the scored tokens (spec 'Combination': final score, normalised score, percentile, rank)."""
from __future__ import annotations

import numpy as np


def percentiles(scores: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """Percent of scored tokens whose score is <= this one ('weak' percentile); NaN if unscored."""
    ref = np.sort(scores[scored])
    pct = 100.0 * np.searchsorted(ref, scores, side="right") / max(len(ref), 1)
    return np.where(scored, pct, np.nan)


def ranks(scores: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """1 = most influential; ties broken by position; 0 for unscored tokens."""
    idx = np.flatnonzero(scored)
    order = idx[np.argsort(-scores[idx], kind="stable")]
    out = np.zeros(len(scores), dtype=np.int64)
    out[order] = np.arange(1, len(order) + 1)
    return out
