"""HETA's quality presets (spec 'Quality vs latency'): fast, balanced, accurate.

accurate = the paper's estimator and probe count (block, m = 10): n*m HVPs, exact KL.
balanced = Hutchinson 'global' estimator, m = 16 HVPs in total, exact KL.
fast     = global m = 4; the exact KL while it costs at most twice the Taylor estimate (short
           contexts), else the Taylor estimate (no masked forwards): information 'auto', cost.resolve_information.
Agreement of fast/balanced with accurate is measured by experiments/bench_agreement.py
(results in experiments/results/ and docs/method.md). `HetaSettings.preset(q, **overrides)` reads
them here; the cost model (cost.py) picks among them for a time budget.
"""
from __future__ import annotations

from typing import Any

from ...errors import InputError
from ...settings import QUALITIES

PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"estimator": "global", "num_probes": 4, "information": "auto", "taylor_vocab": 8},
    "balanced": {"estimator": "global", "num_probes": 16, "information": "exact"},
    "accurate": {"estimator": "block", "num_probes": 10, "information": "exact"},
}
assert tuple(PRESETS) == QUALITIES, "settings.QUALITIES names the presets, in order of cost"


def preset_values(quality: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The preset's fields with `overrides` applied (None values keep the preset's)."""
    if quality not in PRESETS:
        raise InputError(f"quality must be one of {QUALITIES}, got {quality!r}.", "quality")
    return {**PRESETS[quality], **{k: v for k, v in overrides.items() if v is not None}}
