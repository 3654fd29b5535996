"""Tensor helpers every method shares: the one dtype rule for derivatives and divergences, and
the conversion of scores to numpy, so no module keeps its own copy."""
from __future__ import annotations

import numpy as np
import torch


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype log-probabilities, KLs, HVP accumulators and rollouts are computed in: float64 for
    float64 models (the reference checks), float32 for everything else (bf16/fp16 models included:
    second derivatives and KLs in half precision are mostly rounding noise)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A detached float64 numpy copy of a (possibly GPU, possibly grad-carrying) tensor."""
    return t.detach().double().cpu().numpy()
