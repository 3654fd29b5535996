"""One job queue for all model work (GUI and API).

Jobs are callables taking a `JobControl`; they run on worker threads (never on the event
loop), at most `concurrency` at a time (a semaphore; default 1 per GPU), in FIFO order. The
queue is bounded: a full queue raises `QueueFull` with a retry-after hint. Jobs are kept by id,
so a reloaded page or a reconnecting client re-attaches to its job; `cancel` works on queued
and running jobs (running ones stop at the next `control.step`).
"""
from __future__ import annotations

import collections
import itertools
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .control import JobControl
from .errors import HetaError, JobCancelled

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class QueueFull(HetaError):
    code = "queue_full"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class Job:
    id: str
    kind: str
    fn: Callable[[JobControl], Any] = field(repr=False)
    control: JobControl = field(repr=False)
    owner: str | None = None
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    stage: str = ""
    done: int = 0
    total: int = 0
    result: Any = field(default=None, repr=False)
    error: str | None = None
    error_code: str | None = None
    seq: int = 0

    @property
    def fraction(self) -> float:
        return (self.done / self.total) if self.total else 0.0

    def eta_s(self) -> float | None:
        """Seconds left in the current stage, from its rate so far (None until measurable)."""
        if self.state != RUNNING or not self.total or not self.done or self.started is None:
            return None
        stage_elapsed = time.time() - self._stage_started
        return stage_elapsed * (self.total - self.done) / self.done

    _stage_started: float = 0.0


class JobQueue:
    def __init__(self, concurrency: int = 1, max_queued: int = 16, time_limit_s: float | None = 600.0,
                 keep_finished: int = 256):
        self.concurrency = max(1, int(concurrency))
        self.max_queued = max(0, int(max_queued))
        self.time_limit_s = time_limit_s
        self.keep_finished = keep_finished
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Condition()
        self._pending: collections.deque[Job] = collections.deque()
        self._jobs: dict[str, Job] = {}
        self._seq = itertools.count()
        self._durations: collections.deque[float] = collections.deque(maxlen=20)
        self._stopped = False
        self._workers = [threading.Thread(target=self._work, name=f"heta-worker-{i}", daemon=True)
                         for i in range(self.concurrency)]
        for w in self._workers:
            w.start()

    # -- public --------------------------------------------------------------------------
    def submit(self, fn: Callable[[JobControl], Any], kind: str = "explain", owner: str | None = None,
               time_limit_s: float | None = None) -> Job:
        with self._lock:
            if len(self._pending) >= self.max_queued:
                retry = int(max(1, self.typical_seconds() * max(1, len(self._pending)) / self.concurrency))
                raise QueueFull(f"The server is busy ({len(self._pending)} jobs waiting); try again in {retry} s.",
                                retry)
            job = Job(id=secrets.token_urlsafe(9), kind=kind, fn=fn, owner=owner, seq=next(self._seq),
                      control=JobControl(time_limit_s=time_limit_s if time_limit_s is not None else self.time_limit_s))
            job.control.progress = lambda stage, done, total, job=job: self._progress(job, stage, done, total)
            self._jobs[job.id] = job
            self._pending.append(job)
            self._lock.notify()
            self._trim()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """0 = running or finished; 1 = next to run; ..."""
        with self._lock:
            for i, j in enumerate(self._pending):
                if j.id == job.id:
                    return i + 1
        return 0

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state in FINISHED:
                return False
            job.control.cancel()
            if job.state == QUEUED:
                self._pending.remove(job)
                self._finish(job, CANCELLED, error="The job was cancelled.", code="cancelled")
        return True

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            job = self._jobs[job_id]
            while job.state not in FINISHED:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._lock.wait(left)
        return job

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def running(self) -> int:
        return sum(1 for j in self._jobs.values() if j.state == RUNNING)

    def typical_seconds(self) -> float:
        return (sum(self._durations) / len(self._durations)) if self._durations else 10.0

    def shutdown(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    # -- workers -------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopped:
                    self._lock.wait()
                if self._stopped:
                    return
                job = self._pending.popleft()
                job.state, job.started = RUNNING, time.time()
                job._stage_started = job.started
            with self._slots:
                self._run(job)

    def _run(self, job: Job) -> None:
        try:
            job.control.started = time.monotonic()
            job.control.check()
            result = job.fn(job.control)
        except JobCancelled as err:
            self._finish(job, CANCELLED, error=str(err), code=err.code)
        except HetaError as err:
            self._finish(job, FAILED, error=str(err), code=err.code)
        except Exception as err:  # noqa: BLE001 - a bug in one job must not kill the worker
            log.exception("job %s (%s) failed", job.id, job.kind)
            self._finish(job, FAILED, error=f"Internal error ({type(err).__name__}); the server keeps running.",
                         code="internal")
        else:
            job.result = result
            self._finish(job, DONE)
            self._durations.append(job.finished - job.started)

    def _finish(self, job: Job, state: str, error: str | None = None, code: str | None = None) -> None:
        with self._lock:
            job.state, job.error, job.error_code, job.finished = state, error, code, time.time()
            job.fn = None  # type: ignore[assignment]  # drop closures (model inputs) with the job
            self._lock.notify_all()

    def _progress(self, job: Job, stage: str, done: int, total: int) -> None:
        if stage != job.stage:
            job._stage_started = time.time()
        job.stage, job.done, job.total = stage, done, total

    def _trim(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        for j in sorted(finished, key=lambda j: j.seq)[: max(0, len(finished) - self.keep_finished)]:
            self._jobs.pop(j.id, None)
