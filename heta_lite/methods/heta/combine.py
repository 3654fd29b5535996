"""Combination (spec 'Combination'): the three components into one score per token.

    normalised (default): M, S, I each normalised to sum 1 over scored tokens;
                          Attr_i = M_i * (beta * S_i + gamma * I_i),  beta = gamma = 0.5
    raw (the paper's code): the same formula on raw S (HVP l1 norms) and raw I (nats)

Percentiles and ranks, which every method's report shows, live in heta_lite/ranking.py."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...settings import HetaSettings


def normalise_scored(x: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """x / sum over scored tokens (x clamped at 0); uniform over scored tokens if that sum is 0."""
    x = np.where(scored, np.clip(np.asarray(x, dtype=np.float64), 0.0, None), 0.0)
    total = x.sum()
    if not np.isfinite(total) or total <= 0:
        return np.where(scored, 1.0 / max(int(scored.sum()), 1), 0.0)
    return x / total


@dataclass
class Combined:
    M: np.ndarray
    S: np.ndarray
    I: np.ndarray
    attr: np.ndarray


def combine(M_raw: np.ndarray, S_raw: np.ndarray, I_raw: np.ndarray, scored: np.ndarray,
            settings: HetaSettings) -> Combined:
    M = normalise_scored(M_raw, scored)
    S = normalise_scored(S_raw, scored)
    I = normalise_scored(I_raw, scored)
    if settings.combination == "normalised":
        attr = M * (settings.beta * S + settings.gamma * I)
    else:  # 'raw': the paper's code, raw S (HVP l1 norms) and raw I (nats)
        s_raw = np.where(scored, np.clip(S_raw, 0, None), 0.0)
        i_raw = np.where(scored, np.clip(I_raw, 0, None), 0.0)
        attr = M * (settings.beta * s_raw + settings.gamma * i_raw)
    return Combined(M=M, S=S, I=I, attr=np.where(scored, attr, 0.0))

