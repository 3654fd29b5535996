"""What every attribution method takes and returns, so CLI, evaluation and GUI treat them alike."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, ContextManager

import numpy as np
import torch

from ..control import JobControl
from ..models.loader import LoadedModel
from ..settings import HetaSettings
from profiling.memory import StageTimer


@dataclass
class MethodInput:
    """One prediction to explain: context embeddings X (n, d), target y, scored mask."""

    lm: LoadedModel
    input_ids: torch.Tensor  # (n,)
    X: torch.Tensor  # (n, d) input embeddings, detached
    target_id: int
    scored: torch.Tensor  # (n,) bool
    settings: HetaSettings
    control: JobControl
    timer: StageTimer = field(default_factory=StageTimer)
    cache: Any = None  # heta_lite.cache.HetaCache or None
    # Entered around every differentiable forward: on quantized models it may route them through
    # dequantized weights (quant.derivatives); plain forwards (gate, masked KL) never enter it.
    grad_context: Callable[[], ContextManager] = contextlib.nullcontext


@dataclass
class Component:
    raw: np.ndarray  # (n,)
    normalised: np.ndarray  # (n,) sums to 1 over scored tokens


@dataclass
class AttributionResult:
    scores: np.ndarray  # (n,) final score, 0 at unscored tokens
    components: dict[str, Component] = field(default_factory=dict)
    logits: torch.Tensor | None = None  # logits at p if the method computed them anyway
    gate_raw: np.ndarray | None = None  # (n,) HETA's raw gate M at EVERY position (frame included): diagnostics


class AttributionMethod:
    """A method is a small class with one entry point, `attribute`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    uses_gradients: ClassVar[bool] = False

    def needs_gradients(self, settings: HetaSettings) -> bool:
        """Whether this run differentiates through the model (refused on unvalidated quantized layers)."""
        return self.uses_gradients

    def attribute(self, inp: MethodInput) -> AttributionResult:  # pragma: no cover - interface
        raise NotImplementedError


METHODS: dict[str, type[AttributionMethod]] = {}


def register(cls: type[AttributionMethod]) -> type[AttributionMethod]:
    if cls.name in METHODS:
        raise ValueError(f"method {cls.name!r} registered twice")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> AttributionMethod:
    from ..errors import InputError

    if name not in METHODS:
        raise InputError(f"Unknown method {name!r}; available: {', '.join(sorted(METHODS))}.", "method")
    return METHODS[name]()


def method_names() -> list[str]:
    return sorted(METHODS)


Factory = Callable[[], AttributionMethod]
