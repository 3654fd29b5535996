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
from .options import check_options, option

Estimator = Literal["block", "global"]
MaskScheme = Literal["zero", "mean", "pad", "delete"]
Combination = Literal["normalised", "raw"]
InformationMode = Literal["exact", "taylor", "auto"]

ESTIMATORS = ("block", "global")
MASK_SCHEMES = ("zero", "mean", "pad", "delete")
COMBINATIONS = ("normalised", "raw")
INFORMATION_MODES = ("exact", "taylor", "auto")
DERIVATIVE_PATHS = ("auto", "quantized", "dequantized")
QUALITIES = ("fast", "balanced", "accurate")
FRAMES = ("auto", "none")
GATES = ("full", "last-quarter", "norm-mixing")
LONG_INPUT_STRATEGIES = ("window", "refuse")  # heta_lite/long_input.py


@dataclass(frozen=True)
class HetaSettings:
    """All knobs of HETA (spec: 'Quality vs latency').

    estimator / num_probes (m): curvature estimator for S.
    mask: what replaces token i's embedding for the information gain I.
    beta, gamma: weights of S and I in Attr_i = M_i * (beta*S_i + gamma*I_i).
    combination: 'normalised' (S, I each sum to 1 over scored tokens) or 'raw' (paper's code).
    seed: seed of the Rademacher probes; same input + seed -> same output.
    max_tokens: context budget; longer contexts are refused with a message naming it.
    information: 'exact' (one masked forward per token, the spec), 'taylor' (second-order
    Taylor estimate of the same KL from `taylor_vocab` logit gradients; its agreement with 'exact'
    is measured in experiments/) or 'auto' (the fast preset's: exact while it costs at most twice
    the Taylor estimate, i.e. short contexts; `methods/heta/cost.resolve_information`).
    probe_batch / mask_batch: at most how many probes / masked copies share one pass (speed only,
    never changes results). batch_memory_mb: the memory one batched pass may add; the batches
    follow from it (a copy of n tokens costs ~n), so peak memory grows linearly in n whatever the
    caps (heta_lite/models/footprint.py `items_that_fit`).
    time_budget_s: if set, the method plans settings that fit (`AttributionMethod.plan`; HETA picks
    a preset with its cost model, heta_lite/methods/heta/cost.py; baselines keep their settings).
    derivatives: on quantized models, where gradients and HVPs are taken: 'auto' (through the
    quantized layers if they pass `heta_lite.quantization.derivatives.check_derivatives`, else through the
    dequantized weights), 'quantized' (refused if the check fails) or 'dequantized'.
    frame: 'auto' starts every context with frame tokens (spec 'Frame token': the chat template's
    opening, else the tokenizer's BOS, else the model's document separator), never scored;
    'none' is the authors' setting (nothing prepended), kept for comparison.
    gate: the rollout of the gate M (spec 'Evaluation variants'): 'last-quarter' (the last
    ceil(L/4) layers; the default, chosen by the rule pre-registered in experiments/results/README.md
    on the dev half, eval_v2/selection.md), 'full' (all layers, the authors' default) or
    'norm-mixing' (mixing by what each source adds to the residual stream, Kobayashi et al. 2021).
    check: run the faithfulness check after the explanation (heta_lite/faithfulness/check.py:
    top-k deletion against random deletion, one extra batched forward).
    long_input: a prompt longer than max_tokens: 'window' (the frame + the last tokens that fit are
    explained as usual; each earlier chunk gets one summary effect, heta_lite/long_input.py) or
    'refuse'.
    extra: a method's own knobs (e.g. integrated gradients' `ig_steps`); part of the report and
    of the cache key like every other field.
    """

    quality: str = option("balanced", choices=QUALITIES, api=False,
                          help="quality preset: fast, balanced (exact I) or accurate (block S)")
    estimator: Estimator = option("block", choices=ESTIMATORS, help="curvature estimator for S (overrides the preset)")
    num_probes: int = option(3, flag="--probes", low=1, high=256, api_high=32, help="number of Rademacher probes m")
    mask: MaskScheme = option("zero", choices=MASK_SCHEMES, help="what replaces a token's embedding for the information gain I")
    beta: float = option(0.5, low=0, api_high=10, help="weight of the curvature term S")
    gamma: float = option(0.5, low=0, api_high=10, help="weight of the information term I")
    combination: Combination = option("normalised", choices=COMBINATIONS,
                                      help="normalised (S, I each sum to 1) or raw (the paper's code)")
    seed: int = option(0, low=0, high=2**63 - 1, api_high=2**31 - 1, help="seed of the probes and random draws")
    max_tokens: int = option(512, low=1, high=32768, api_high=1024, help="context token limit")
    information: InformationMode = option("exact", choices=INFORMATION_MODES,
                                          help="KL term: exact masking, its Taylor estimate, or auto (exact for "
                                          "short contexts)")
    taylor_vocab: int = option(32, low=1, high=4096, api_high=256,
                               help="Taylor estimate of I: logit gradients taken for this many top tokens")
    probe_batch: int = option(16, low=1, high=4096, api=False, help="probes / path points per backward (speed only)")
    mask_batch: int = option(8, low=1, high=4096, api=False, help="at most this many masked copies per forward (speed only)")
    batch_memory_mb: int | None = option(None, low=1, high=2**20, api=False,
                                         help="memory one batched pass may add, MiB (default: 512 on a CPU, 4096 on "
                                         "a GPU); probes and masked copies per pass follow from it (speed only)")
    time_budget_s: float | None = option(None, flag="--time-budget", low=0, low_open=True, high=86400, api_high=600,
                                         help="pick the best settings estimated to fit in this many seconds")
    derivatives: str = option("auto", choices=DERIVATIVE_PATHS,
                              help="quantized models: gradients/HVPs through the quantized layers if they pass the "
                              "derivative check (auto), always (quantized; refused if the check fails) or through "
                              "the dequantized weights (dequantized)")
    frame: str = option("auto", choices=FRAMES,
                        help="auto (default): start the context with frame tokens (chat template opening, BOS or "
                        "the model's document separator), never scored; none: nothing prepended (the authors' setting)")
    gate: str = option("last-quarter", choices=GATES,
                       help="rollout of the gate M: last-quarter (the default, chosen on the evaluation's dev "
                            "half), full (all layers), norm-mixing (docs/method.md)")
    check: bool = option(True, negate_flag="--no-check",
                         help="run the faithfulness check (top-k vs random deletion) after the explanation "
                         "(--no-check skips it)")
    long_input: str = option("window", choices=LONG_INPUT_STRATEGIES,
                             help="a prompt longer than max_tokens: window (default) scores the last tokens that "
                             "fit and gives each earlier chunk one summary effect (docs/method.md, 'Long inputs'); "
                             "refuse: refuse it")
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_options(self)  # choices and bounds, from the declarations above
        if self.information == "taylor" and self.mask == "delete":
            raise InputError("The Taylor information estimate needs a replacement embedding; use mask 'zero', "
                             "'mean' or 'pad', or information 'exact'.", "information")
        if self.beta == 0 and self.gamma == 0:
            raise InputError("beta and gamma must be >= 0 and not both 0.", "beta")

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

