"""The faithfulness check that comes with every explanation.

Delete the explanation's top-k scored tokens (k = 3; a third of the scored tokens, at least 1,
when fewer than 9 are scored) and, separately, k random scored tokens (5 seeded draws), frame
and template tokens always kept, and read p(y) each time. If the top tokens matter, deleting
them lowers p(y) more than deleting random ones. Costs one batched forward of 6 sequences
(p(y) before is the explanation's own).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .metrics import random_subsets, removal_drops, top_k

DRAWS = 5
PASSED = "the top tokens matter more than random ones"
FAILED = "this explanation is no better than random"


@dataclass
class FaithfulnessCheck:
    k: int
    removed: list[int]  # positions of the top-k tokens deleted
    p_before: float
    p_after_top: float
    p_after_random: float  # mean over the draws
    p_after_random_draws: list[float]
    beats_draws: int  # random draws whose p(y) stayed above p_after_top
    passed: bool
    verdict: str
    mode: str = "delete"
    draws: int = DRAWS
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def check_k(n_scored: int) -> int:
    """k = 3, or a third of the scored tokens (at least 1) when fewer than 9 are scored."""
    return 3 if n_scored >= 9 else max(1, n_scored // 3)


@torch.no_grad()
def faithfulness_check(lm, X: torch.Tensor, y: int, scores: np.ndarray, scored: np.ndarray, p_before: float,
                       seed: int = 0, draws: int = DRAWS) -> FaithfulnessCheck:
    """Top-k deletion against k random deletions (module docstring). `p_before` is p(y | X)."""
    scored = np.asarray(scored, dtype=bool)
    k = check_k(int(scored.sum()))
    top = top_k(scores, scored, k)
    rand = random_subsets(scored, [k], draws, seed)[k]
    _, drops = removal_drops(lm, X, y, [top] + rand, "delete", p_full=p_before)
    p_top = p_before - drops[0]
    p_rand = [p_before - d for d in drops[1:]]
    p_rand_mean = float(np.mean(p_rand))
    passed = bool(p_top < p_rand_mean)
    return FaithfulnessCheck(k=k, removed=sorted(top), p_before=float(p_before), p_after_top=float(p_top),
                             p_after_random=p_rand_mean, p_after_random_draws=[float(p) for p in p_rand],
                             beats_draws=int(sum(p > p_top for p in p_rand)), passed=passed,
                             verdict=PASSED if passed else FAILED, draws=draws, seed=seed)
