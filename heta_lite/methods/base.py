"""What every attribution method takes and returns, so CLI, evaluation and GUI treat them alike,
and the one hook through which a method plans its own run (time budget, memory)."""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, ContextManager

import numpy as np
import torch

from ..control import JobControl
from ..errors import InputError, ResourceLimitError
from ..models.footprint import activation_bytes, items_that_fit, memory_limit
from ..models.loader import LoadedModel
from ..profiling import StageTimer
from ..settings import HetaSettings


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
    # dequantized weights (heta_lite.quantization.derivatives); plain forwards (gate, masked KL) never enter it.
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
    """A method is a small class with one entry point, `attribute`, and two optional hooks."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    uses_gradients: ClassVar[bool] = False
    # The method's own knobs: a dataclass whose fields are declared with heta_lite.options.option
    # (so CLI flags and API fields are generated from it). Its values ride in settings.extra.
    config: ClassVar[type | None] = None

    def configure(self, settings: HetaSettings, known: frozenset[str] = frozenset()) -> HetaSettings:
        """`settings` with `extra` holding exactly this method's config, defaults filled in and
        validated, so the report and the cache key always name every knob the run used (two runs
        differing in one knob never share a cache entry). Knobs of other methods (`known`: every
        registered method's) are dropped; a knob no method declares is refused."""
        mine = {f.name for f in dataclasses.fields(self.config)} if self.config is not None else set()
        stray = sorted(set(settings.extra) - mine - set(known))
        if stray:
            raise InputError(f"Unknown option(s) for '{self.name}': {', '.join(stray)}.", stray[0])
        if self.config is None:
            return settings.replace(extra={}) if settings.extra else settings
        cfg = self.config(**{k: v for k, v in settings.extra.items() if k in mine})
        return settings.replace(extra=dataclasses.asdict(cfg))

    def options(self, settings: HetaSettings) -> Any:
        """This method's config instance from (configured) settings."""
        assert self.config is not None, f"{self.name} declares no config"
        return self.config(**{k: settings.extra[k] for k in settings.extra
                              if k in {f.name for f in dataclasses.fields(self.config)}})

    def needs_gradients(self, settings: HetaSettings) -> bool:
        """Whether this run differentiates through the model (refused on unvalidated quantized layers)."""
        return self.uses_gradients

    def plan(self, lm: LoadedModel, n: int, n_scored: int, settings: HetaSettings,
             memory_limit_bytes: int | None = None) -> tuple[HetaSettings, list[str]]:
        """The settings to run with for n context tokens (n_scored of them scored), and notes for the
        report. A method with a cost model (HETA) resolves a time budget and fits its batches here.
        This default changes nothing: a method without a cost model has no quality to trade, so a
        time budget is only noted; it refuses only a context whose single forward (with its
        backward for gradient methods) would not fit the memory limit."""
        notes = []
        if settings.time_budget_s is not None:
            notes.append(f"time budget: '{self.name}' has no cost model; ran with the settings as given")
        limit = memory_limit(lm, memory_limit_bytes)
        need = activation_bytes(lm, n, with_grad=self.needs_gradients(settings))
        if need > limit:
            raise ResourceLimitError(
                f"Explaining {n} tokens with '{self.name}' needs about {need / 2**30:.1f} GiB but the limit is "
                f"{limit / 2**30:.1f} GiB; shorten the prompt or lower max_tokens.")
        return settings, notes

    def attribute(self, inp: MethodInput) -> AttributionResult:  # pragma: no cover - interface
        raise NotImplementedError


def fit_batch(settings: HetaSettings, knob: str, per_copy_bytes: int, limit_bytes: int,
              notes: list[str], budget_bytes: int | None = None) -> HetaSettings:
    """Halve the batch-size cap `knob` (probe_batch, mask_batch: at most how many copies share one
    pass) until the copies a pass really takes (the cap, or fewer when the batch memory budget
    `budget_bytes` holds fewer) fit `limit_bytes`; results never change, only speed. Appends a
    note when it shrank; ResourceLimitError if even one copy does not fit."""
    batch = getattr(settings, knob)

    def taken(cap: int) -> int:
        return cap if budget_bytes is None else items_that_fit(cap, per_copy_bytes, budget_bytes)

    while batch > 1 and taken(batch) * per_copy_bytes > limit_bytes:
        batch = max(1, batch // 2)
    if per_copy_bytes > limit_bytes:
        raise ResourceLimitError(f"One pass needs about {per_copy_bytes / 2**30:.1f} GiB but the limit is "
                                 f"{limit_bytes / 2**30:.1f} GiB; shorten the prompt or lower max_tokens.")
    if batch != getattr(settings, knob):
        notes.append(f"memory: {knob} shrunk to {batch} to fit the memory limit (results unchanged)")
        settings = settings.replace(**{knob: batch})
    return settings
