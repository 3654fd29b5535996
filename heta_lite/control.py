"""Progress reporting and cooperative cancellation for one job.

Long loops call `control.step(stage, done, total)` between passes: that reports progress
and raises `JobCancelled` / `JobTimeout` when the job should stop, so partial work is
dropped at a safe point and its memory freed.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .errors import JobCancelled, JobTimeout

ProgressFn = Callable[[str, int, int], None]


@dataclass
class JobControl:
    progress: ProgressFn | None = None
    time_limit_s: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled("The job was cancelled.")
        if self.time_limit_s is not None and self.elapsed > self.time_limit_s:
            raise JobTimeout(f"The job ran past its time limit of {self.time_limit_s:g} s; "
                             "try the 'fast' quality or a shorter prompt.")

    def step(self, stage: str, done: int, total: int) -> None:
        self.check()
        if self.progress is not None:
            self.progress(stage, done, total)


NO_CONTROL = JobControl()
