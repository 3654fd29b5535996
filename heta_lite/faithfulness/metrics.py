"""Faithfulness metrics of the spec ('Faithfulness'), each a plain function.

All take the context embeddings X (n, d), the target id y and the attribution scores (n,)
(non-negative, zero at unscored tokens); `scored` marks the tokens a metric may remove.
Probabilities are read at the last position, in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..models.loader import LoadedModel, attention_implementation


@torch.no_grad()
def last_logprobs(lm: LoadedModel, seqs: list[torch.Tensor], batch: int = 16) -> torch.Tensor:
    """log softmax at the last position for each embedding sequence (sequences of equal length are
    batched together)."""
    out = [None] * len(seqs)
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        by_len.setdefault(s.shape[0], []).append(i)
    with attention_implementation(lm.model, "sdpa"):
        for _L, idx in by_len.items():
            for start in range(0, len(idx), batch):
                chunk = idx[start:start + batch]
                X = torch.stack([seqs[i] for i in chunk])
                logits = lm.model(inputs_embeds=X, use_cache=False, logits_to_keep=1).logits[:, -1]
                lp = torch.log_softmax(logits.double(), -1)
                for j, i in enumerate(chunk):
                    out[i] = lp[j]
    return torch.stack(out)  # type: ignore[arg-type]


def remove_tokens(X: torch.Tensor, positions, mode: str) -> torch.Tensor:
    """'delete': drop the rows; 'zero': replace them by the zero embedding."""
    positions = sorted(int(p) for p in positions)
    if mode == "delete":
        keep = [i for i in range(X.shape[0]) if i not in set(positions)]
        return X[keep]
    if mode == "zero":
        Y = X.clone()
        Y[positions] = 0
        return Y
    raise ValueError(f"unknown removal mode {mode!r}")


def k_values(n_scored: int) -> list[int]:
    """k = 1, 2, 3, 5 and 10/20/30% of the scored tokens (at least 1), deduplicated, <= n_scored."""
    ks = [1, 2, 3, 5] + [max(1, math.ceil(f * n_scored)) for f in (0.1, 0.2, 0.3)]
    return sorted({k for k in ks if k <= n_scored})


def removable_ks(ks: list[int], n: int, mode: str) -> list[int]:
    """The k's a removal mode can take on an n-token context: 'delete' stops at n - 1, since deleting
    every token leaves no position to predict from (a 5-token prompt whose tokens are all scored);
    'zero' keeps them all (a context of zero embeddings still has positions)."""
    return [k for k in ks if k < n] if mode == "delete" else list(ks)


def top_k(scores: np.ndarray, scored: np.ndarray, k: int) -> list[int]:
    idx = np.flatnonzero(scored)
    order = idx[np.argsort(-scores[idx], kind="stable")]
    return [int(i) for i in order[:k]]


def random_subsets(scored: np.ndarray, ks: list[int], draws: int, seed: int) -> dict[int, list[list[int]]]:
    """`draws` random sets of k scored positions for every k (numpy Generator seeded with `seed`);
    the same (scored, ks, draws, seed) always gives the same sets, so every method of an item is
    compared with the same random removals."""
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(scored)
    return {k: [sorted(int(i) for i in rng.choice(idx, size=k, replace=False)) for _ in range(draws)] for k in ks}


def aopc(drops) -> float:
    """AOPC = (1/|K|) sum_{k in K} (p(y | x) - p(y | x without k tokens)): the mean of the drops."""
    drops = list(drops)
    return float(np.mean(drops)) if drops else float("nan")


@dataclass
class DeletionResult:
    ks: list[int]
    p_full: float
    drop_top: list[float]  # p(y) - p(y | top-k removed)
    drop_random: list[float]  # mean over random draws of k scored tokens

    @property
    def aopc_top(self) -> float:
        """AOPC: mean drop over the k's."""
        return aopc(self.drop_top)

    @property
    def aopc_random(self) -> float:
        return aopc(self.drop_random)


def removal_drops(lm: LoadedModel, X: torch.Tensor, y: int, removals: list[list[int]], mode: str,
                  p_full: float | None = None) -> tuple[float, list[float]]:
    """(p(y | X), [p(y | X) - p(y | X with the positions of removal r removed) for r in removals])."""
    seqs = ([] if p_full is not None else [X]) + [remove_tokens(X, r, mode) for r in removals]
    p = last_logprobs(lm, seqs)[:, y].exp().cpu().numpy() if seqs else np.zeros(0)
    if p_full is None:
        p_full, p = float(p[0]), p[1:]
    return p_full, [p_full - float(v) for v in p]


def deletion_random(lm: LoadedModel, X: torch.Tensor, y: int, scored: np.ndarray, mode: str = "zero",
                    ks: list[int] | None = None, random_draws: int = 5, seed: int = 0) -> tuple[float, list[float]]:
    """(p(y | X), [mean over `random_draws` random k-subsets of the drop in p(y) for each k]).
    Depends only on the item, never on the method: compute it once per item."""
    ks = removable_ks(ks or k_values(int(scored.sum())), X.shape[0], mode)
    subsets = random_subsets(scored, ks, random_draws, seed)
    flat = [r for k in ks for r in subsets[k]]
    p0, drops = removal_drops(lm, X, y, flat, mode)
    return p0, [float(np.mean(drops[j * random_draws:(j + 1) * random_draws])) for j in range(len(ks))]


def deletion(lm: LoadedModel, X: torch.Tensor, y: int, scores: np.ndarray, scored: np.ndarray, mode: str = "zero",
             ks: list[int] | None = None, random_draws: int = 5, seed: int = 0,
             random: tuple[float, list[float]] | None = None) -> DeletionResult:
    """Drop in p(y) after removing the top-k attributed tokens vs k random scored tokens:
    drop_k = p(y | X) - p(y | X without those k), random averaged over `random_draws` draws.
    `random` = a deletion_random(...) result for the same (X, y, scored, mode, ks, draws, seed)
    to reuse (the evaluation computes it once per item)."""
    ks = removable_ks(ks or k_values(int(scored.sum())), X.shape[0], mode)
    p0, drop_rand = random or deletion_random(lm, X, y, scored, mode, ks, random_draws, seed)
    _, drop_top = removal_drops(lm, X, y, [top_k(scores, scored, k) for k in ks], mode, p_full=p0)
    return DeletionResult(ks=ks, p_full=p0, drop_top=drop_top, drop_random=list(drop_rand))


def sufficiency(lm: LoadedModel, X: torch.Tensor, y: int, scores: np.ndarray, scored: np.ndarray,
                ks: list[int] | None = None) -> dict[int, float]:
    """Sufficiency_k = p(y | only the top-k scored tokens kept): the other scored tokens get the
    zero embedding (special tokens stay). Higher is better."""
    ks = ks or k_values(int(scored.sum()))
    idx = set(np.flatnonzero(scored).tolist())
    seqs = [remove_tokens(X, sorted(idx - set(top_k(scores, scored, k))), "zero") for k in ks]
    p = last_logprobs(lm, seqs)[:, y].exp().cpu().numpy()
    return {k: float(v) for k, v in zip(ks, p)}


def sufficiency_random(lm: LoadedModel, X: torch.Tensor, y: int, scored: np.ndarray, ks: list[int] | None = None,
                       draws: int = 5, seed: int = 0) -> dict[int, float]:
    """The same as `sufficiency` with k random scored tokens kept, averaged over `draws` draws."""
    ks = ks or k_values(int(scored.sum()))
    idx = set(np.flatnonzero(scored).tolist())
    subsets = random_subsets(scored, ks, draws, seed + 1)
    seqs = [remove_tokens(X, sorted(idx - set(r)), "zero") for k in ks for r in subsets[k]]
    p = last_logprobs(lm, seqs)[:, y].exp().cpu().numpy()
    return {k: float(np.mean(p[j * draws:(j + 1) * draws])) for j, k in enumerate(ks)}


def hellinger_like(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """D(p, q) = sum_v (sqrt p_v - sqrt q_v)^2 / sqrt 2 (the spec's form; in [0, sqrt 2])."""
    return ((p.sqrt() - q.sqrt()) ** 2).sum(-1) / math.sqrt(2)


def soft_metrics(lm: LoadedModel, X: torch.Tensor, scores: np.ndarray, scored: np.ndarray, draws: int = 5,
                 seed: int = 0) -> dict[str, float]:
    """Soft-NS and Soft-NC (Zhao & Aletras 2023). s = scores / max (in [0, 1]); each embedding
    element of token j is kept with probability s_j (NS, p_keep) or 1 - s_j (NC, p_drop); others
    zeroed; unscored tokens are never perturbed. S = 1 - D(p, p_keep), C = D(p, p_drop),
    S0 = 1 - D(p, p_all_masked); Soft-NS = max(0, S - S0) / (1 - S0), Soft-NC = C / (1 - S0).
    Averaged over `draws` Bernoulli samples."""
    s = np.where(scored, scores, 0.0)
    s = s / s.max() if s.max() > 0 else s
    g = torch.Generator().manual_seed(seed)
    prob = torch.tensor(s, dtype=X.dtype)[:, None].expand_as(X).cpu()
    unscored = torch.tensor(~scored)[:, None].expand_as(X)
    seqs = [X, remove_tokens(X, np.flatnonzero(scored), "zero")]
    for _ in range(draws):
        u = torch.rand(X.shape, generator=g, dtype=X.dtype)
        keep_ns = (u < prob) | unscored
        keep_nc = (u < 1 - prob) | unscored
        seqs += [X * keep_ns.to(X.device, X.dtype), X * keep_nc.to(X.device, X.dtype)]
    P = last_logprobs(lm, seqs).exp()
    p, p_all = P[0], P[1]
    S0 = 1 - float(hellinger_like(p, p_all))
    S = 1 - float(hellinger_like(p[None], P[2::2]).mean())
    C = float(hellinger_like(p[None], P[3::2]).mean())
    denom = max(1 - S0, 1e-12)
    return {"soft_ns": max(0.0, S - S0) / denom, "soft_nc": C / denom, "S": S, "C": C, "S0": S0}


def segment_mask(token_spans: list[tuple[int, int]], segment: tuple[int, int]) -> np.ndarray:
    """Tokens whose character span [s, e) overlaps the segment [a, b) (s < b and e > a; empty
    spans never belong). Offsets only: never substring matching."""
    a, b = segment
    return np.array([s < b and e > a and e > s for s, e in token_spans], dtype=bool)


def dsa(normalised: np.ndarray, token_spans: list[tuple[int, int]], evidence: tuple[int, int],
        distractor: tuple[int, int]) -> float:
    """Dependent sentence alignment: DSA = sum_{i in evidence} w_i - sum_{i in distractor} w_i with
    w the scores normalised to sum 1 over scored tokens; a token belongs to a segment when its
    character span overlaps the segment's span (`segment_mask`). In [-1, 1]."""
    w = np.asarray(normalised, dtype=float)
    return float(w[segment_mask(token_spans, evidence)].sum() - w[segment_mask(token_spans, distractor)].sum())


def dsa_uniform(scored: np.ndarray, token_spans: list[tuple[int, int]], evidence: tuple[int, int],
                distractor: tuple[int, int]) -> float:
    """DSA of the uniform attribution over scored tokens, which is also the expected DSA of a random
    attribution: (|evidence & scored| - |distractor & scored|) / |scored|."""
    scored = np.asarray(scored, dtype=bool)
    w = scored / max(1, scored.sum())
    return dsa(w, token_spans, evidence, distractor)


def ratio(value: float, reference: float) -> float | None:
    """value / reference, None when the reference is 0 (the ratio is undefined, not infinite)."""
    return value / reference if reference > 0 else None


def random_scores(scored: np.ndarray, seed: int) -> np.ndarray:
    """A random attribution: U(0, 1) on scored tokens, 0 elsewhere."""
    rng = np.random.default_rng(seed)
    return np.where(scored, rng.random(len(scored)), 0.0)


def permuted_scores(scores: np.ndarray, scored: np.ndarray, seed: int) -> np.ndarray:
    """A random attribution with the method's own score distribution: the scores of the scored
    tokens shuffled among them (seeded), 0 elsewhere. Soft-NS / Soft-NC depend on how flat the
    scores are (s = scores / max sets the keep probabilities), not only on their order; against
    U(0, 1) random scores any peaked attribution looks worse. The ratio to this shuffle isolates
    the ranking."""
    out = np.zeros(len(scores))
    idx = np.flatnonzero(scored)
    out[idx] = np.random.default_rng(seed).permutation(np.asarray(scores, dtype=float)[idx])
    return out


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) with a 95% percentile bootstrap interval."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(v, size=(n_boot, len(v)), replace=True).mean(1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
