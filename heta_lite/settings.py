"""Settings of one explanation: every knob of the spec, validated.

`HetaSettings` is a frozen dataclass so that a report can record exactly what it ran
with and a cache can key on it. The quality presets are HETA's and live with it
(heta_lite/methods/heta/presets.py); `HetaSettings.preset("fast", seed=3)` reads them there.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InputError

Estimator = Literal["block", "global"]
MaskScheme = Literal["zero", "mean", "pad", "delete"]
Combination = Literal["normalised", "raw"]
InformationMode = Literal["exact", "taylor"]

ESTIMATORS = ("block", "global")
MASK_SCHEMES = ("zero", "mean", "pad", "delete")
COMBINATIONS = ("normalised", "raw")
INFORMATION_MODES = ("exact", "taylor")
DERIVATIVE_PATHS = ("auto", "quantized", "dequantized")
QUALITIES = ("fast", "balanced", "accurate")
FRAMES = ("auto", "none")
GATES = ("full", "last-quarter", "norm-mixing")


@dataclass(frozen=True)
class HetaSettings:
    """All knobs of HETA (spec: 'Quality vs latency').

    estimator / num_probes (m): curvature estimator for S.
    mask: what replaces token i's embedding for the information gain I.
    beta, gamma: weights of S and I in Attr_i = M_i * (beta*S_i + gamma*I_i).
    combination: 'normalised' (S, I each sum to 1 over scored tokens) or 'raw' (paper's code).
    seed: seed of the Rademacher probes; same input + seed -> same output.
    max_tokens: context budget; longer contexts are refused with a message naming it.
    information: 'exact' (one masked forward per token, the spec) or 'taylor' (second-order
    Taylor estimate of the same KL from `taylor_vocab` logit gradients; the fast preset's
    approximation, its agreement with 'exact' is measured in experiments/).
    probe_batch / mask_batch: how many probes / masked copies share one pass (speed only,
    never changes results).
    time_budget_s: if set, the method plans settings that fit (`AttributionMethod.plan`; HETA picks
    a preset with its cost model, heta_lite/methods/heta/cost.py; baselines keep their settings).
    derivatives: on quantized models, where gradients and HVPs are taken: 'auto' (through the
    quantized layers if they pass `heta_lite.quantization.derivatives.check_derivatives`, else through the
    dequantized weights), 'quantized' (refused if the check fails) or 'dequantized'.
    frame: 'auto' starts every context with frame tokens (spec 'Frame token': the chat template's
    opening, else the tokenizer's BOS, else the model's document separator), never scored;
    'none' is the authors' setting (nothing prepended), kept for comparison.
    gate: the rollout of the gate M (spec 'Evaluation variants'): 'full' (all layers),
    'last-quarter' (the last ceil(L/4) layers) or 'norm-mixing' (mixing by what each source adds
    to the residual stream, Kobayashi et al. 2021).
    check: run the faithfulness check after the explanation (heta_lite/faithfulness/check.py:
    top-k deletion against random deletion, one extra batched forward).
    extra: a method's own knobs (e.g. integrated gradients' `ig_steps`); part of the report and
    of the cache key like every other field.
    """

    quality: str = "balanced"
    estimator: Estimator = "block"
    num_probes: int = 3
    mask: MaskScheme = "zero"
    beta: float = 0.5
    gamma: float = 0.5
    combination: Combination = "normalised"
    seed: int = 0
    max_tokens: int = 512
    information: InformationMode = "exact"
    taylor_vocab: int = 32
    probe_batch: int = 16
    mask_batch: int = 8
    time_budget_s: float | None = None
    derivatives: str = "auto"
    frame: str = "auto"
    gate: str = "full"
    check: bool = True
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise InputError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}.", "estimator")
        if self.mask not in MASK_SCHEMES:
            raise InputError(f"mask must be one of {MASK_SCHEMES}, got {self.mask!r}.", "mask")
        if self.information not in INFORMATION_MODES:
            raise InputError(f"information must be one of {INFORMATION_MODES}, got {self.information!r}.", "information")
        if self.information == "taylor" and self.mask == "delete":
            raise InputError("The Taylor information estimate needs a replacement embedding; use mask 'zero', "
                             "'mean' or 'pad', or information 'exact'.", "information")
        if not (1 <= int(self.taylor_vocab) <= 4096):
            raise InputError(f"taylor_vocab must be between 1 and 4096, got {self.taylor_vocab}.", "taylor_vocab")
        if self.combination not in COMBINATIONS:
            raise InputError(f"combination must be one of {COMBINATIONS}, got {self.combination!r}.", "combination")
        if not (1 <= int(self.num_probes) <= 256):
            raise InputError(f"num_probes must be between 1 and 256, got {self.num_probes}.", "num_probes")
        if not (1 <= int(self.max_tokens) <= 32768):
            raise InputError(f"max_tokens must be between 1 and 32768, got {self.max_tokens}.", "max_tokens")
        if self.beta < 0 or self.gamma < 0 or (self.beta == 0 and self.gamma == 0):
            raise InputError("beta and gamma must be >= 0 and not both 0.", "beta")
        if self.time_budget_s is not None and not (0 < float(self.time_budget_s) <= 86400):
            raise InputError(f"time_budget_s must be between 0 and 86400 s, got {self.time_budget_s}.", "time_budget_s")
        if self.derivatives not in DERIVATIVE_PATHS:
            raise InputError(f"derivatives must be one of {DERIVATIVE_PATHS}, got {self.derivatives!r}.", "derivatives")
        if self.frame not in FRAMES:
            raise InputError(f"frame must be one of {FRAMES}, got {self.frame!r}.", "frame")
        if self.gate not in GATES:
            raise InputError(f"gate must be one of {GATES}, got {self.gate!r}.", "gate")
        if self.probe_batch < 1 or self.mask_batch < 1:
            raise InputError("probe_batch and mask_batch must be >= 1.", "probe_batch")

    @classmethod
    def preset(cls, quality: str = "balanced", **overrides: Any) -> "HetaSettings":
        """Settings of a named quality preset, with any field overridden (None = keep the preset's).
        The presets are HETA's (heta_lite/methods/heta/presets.py), imported here on first use so
        that this bottom-layer module does not depend on the methods at import time."""
        from .methods.heta.presets import preset_values

        return cls(quality=quality, **preset_values(quality, overrides))

    def replace(self, **changes: Any) -> "HetaSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field, a method's own knobs (`extra`) included: what the report records and
        what the cache key is made of."""
        d = dataclasses.asdict(self)
        d["extra"] = {k: d["extra"][k] for k in sorted(d["extra"])}
        return d

