"""What one page (one browser tab) holds: its context, target, explanation and samples. The
models, queue and cache are the app's (gui/state.py); nothing here is shared between pages."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PageState:
    ctx: Any = None               # the generated Context (tokens to pick from)
    target: int | None = None     # the picked token's index
    lm: Any = None                # the model the tokens were generated with (explain stays on it)
    exp: Any = None               # the last Explanation and its report
    report: dict | None = None
    last_peak: dict | None = None  # that explanation's peak memory (the memory panel shows it)
    estimate_key: tuple[int, int] | None = None  # (n, n_scored) the estimate was made for
    estimates: dict = field(default_factory=dict)  # quality -> expected seconds
    job_quality: str | None = None  # the running explanation's preset (for its ETA)
    lens_target: int | None = None
    samples: list = field(default_factory=list)  # (time, RSS MiB, GPU MiB) for the memory chart

    def page_lm(self, state):
        """The model the current tokens were generated with (else the primary)."""
        return self.lm or state.lm
