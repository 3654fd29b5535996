"""One job queue for all model work (GUI and API).

Jobs are callables taking a `JobControl`; they run on worker threads (never on the event
loop), at most `concurrency` at a time (a semaphore; default 1 per GPU), in FIFO order. The
queue is bounded: a full queue raises `QueueFull` with a retry-after hint. Jobs are kept by id,
so a reloaded page or a reconnecting client re-attaches to its job; `cancel` works on queued
and running jobs (running ones stop at the next `control.step`).

Ownership: every job gets a secret `token` (never in `status()` views or reprs). The submitter
alone is handed it (the API's 202 answer, the page's tab storage); `owned(job_id, token)` is the
lookup for anyone else, compared in constant time. Finished jobs are dropped after
`keep_finished_s` seconds (default 1 hour) and beyond the newest `keep_finished`.

Cancellation has one rule, decided under the queue's lock: `cancel` returns True exactly when the
job ends CANCELLED. A job whose function returns (or fails) after a cancel was accepted ends
CANCELLED too, its result dropped; a cancel that comes after the job finished returns False and
changes nothing. Every way a job ends wakes the waiters of `wait`.

    q = JobQueue(concurrency=1, max_queued=16, time_limit_s=600)
    job = q.submit(lambda control: explain(lm, prompt, control=control))   # -> Job; job.id is its key
    q.status(job.id)   # {"state": "queued", "queue_position": 1, "progress": {...}, "eta_s": ...}
    q.cancel(job.id); q.wait(job.id, timeout=10).result
"""
from __future__ import annotations

import collections
import hmac
import itertools
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .control import JobControl
from .errors import HetaError, JobCancelled, QueueFull, http_facts

__all__ = ["Job", "JobQueue", "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "FINISHED"]

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


@dataclass
class Job:
    id: str
    kind: str
    fn: Callable[[JobControl], Any] = field(repr=False)
    control: JobControl = field(repr=False)
    owner: str | None = None
    surface: str = ""  # who submitted it: "api", "gui" (what its result is: a report dict, or page objects)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
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
    error_http: tuple[int, str, int | None] | None = None  # the failing HetaError's (status, code, retry)
    seq: int = 0

    def token_matches(self, token: str | None) -> bool:
        """Constant-time check of a presented token (any text: compared as UTF-8 bytes)."""
        return token is not None and hmac.compare_digest(token.encode("utf-8", "surrogatepass"),
                                                         self.token.encode("utf-8"))

    @property
    def fraction(self) -> float:
        return (self.done / self.total) if self.total else 0.0

    @property
    def elapsed_s(self) -> float:
        """Seconds running so far (0 while queued; the run time once finished)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def eta_s(self) -> float | None:
        """Seconds left in the current stage, from its rate so far (None until measurable)."""
        if self.state != RUNNING or not self.total or not self.done or self.started is None:
            return None
        stage_elapsed = time.time() - self._stage_started
        return stage_elapsed * (self.total - self.done) / self.done

    _stage_started: float = 0.0


class JobQueue:
    def __init__(self, concurrency: int = 1, max_queued: int = 16, time_limit_s: float | None = 600.0,
                 keep_finished: int = 256, keep_finished_s: float | None = 3600.0,
                 clock: Callable[[], float] = time.time):
        """`keep_finished_s`: seconds a finished job stays retrievable (None: no time limit);
        `clock` (wall clock, injectable for tests) is what that age is measured with."""
        self.concurrency = max(1, int(concurrency))
        self.max_queued = max(0, int(max_queued))
        self.time_limit_s = time_limit_s
        self.keep_finished = keep_finished
        self.keep_finished_s = keep_finished_s
        self._clock = clock
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Condition()
        self._pending: collections.deque[Job] = collections.deque()
        self._jobs: dict[str, Job] = {}
        self._seq = itertools.count()
        self._durations: dict[str, collections.deque[float]] = collections.defaultdict(
            lambda: collections.deque(maxlen=20))
        self._stopped = False
        self._workers = [threading.Thread(target=self._work, name=f"heta-worker-{i}", daemon=True)
                         for i in range(self.concurrency)]
        for w in self._workers:
            w.start()

    # -- public --------------------------------------------------------------------------
    def submit(self, fn: Callable[[JobControl], Any], kind: str = "explain", owner: str | None = None,
               time_limit_s: float | None = None, surface: str = "") -> Job:
        """Queue `fn(control)`; returns its `Job` (key: `job.id`). Raises `QueueFull` when
        `max_queued` jobs are already waiting (its `retry_after_s` is a rough hint)."""
        with self._lock:
            if self._stopped:
                raise QueueFull("The server is shutting down; try again in a moment.", 5)
            if len(self._pending) >= self.max_queued:
                retry = int(max(1, round(sum(self.typical_seconds(j.kind) for j in self._pending) / self.concurrency)))
                raise QueueFull(f"The server is busy ({len(self._pending)} jobs waiting); try again in {retry} s.",
                                retry)
            self._trim()
            limit = time_limit_s if time_limit_s is not None else self.time_limit_s
            job = Job(id=secrets.token_urlsafe(9), kind=kind, fn=fn, owner=owner, surface=surface,
                      seq=next(self._seq), control=JobControl(time_limit_s=limit))
            job.control.progress = lambda stage, done, total, job=job: self._progress(job, stage, done, total)
            self._jobs[job.id] = job
            self._pending.append(job)
            self._lock.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        """The job by id, without an ownership check (the server's own use; None once expired)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and self._expired(job):
                self._jobs.pop(job_id, None)
                return None
            return job

    def owned(self, job_id: str, token: str | None) -> Job | None:
        """The job if `token` is its secret, else None: an unknown id and a wrong token look the
        same, so neither the id nor the token can be probed for."""
        job = self.get(job_id)
        return job if job is not None and job.token_matches(token) else None

    def status(self, job_id: str, with_result: bool = False) -> dict | None:
        """A JSON-ready view of one job (None if unknown): state, queue position, progress,
        ETA (`eta_s`: seconds until it finishes, rough; `wait_s` while queued), error."""
        job = self.get(job_id)
        if job is None:
            return None
        pos = self.position(job)
        view: dict[str, Any] = {
            "job_id": job.id, "kind": job.kind, "state": job.state, "queue_position": pos,
            "progress": {"stage": job.stage, "done": job.done, "total": job.total,
                         "fraction": round(job.fraction, 4), "stage_eta_s": job.eta_s()},
            "elapsed_s": round(job.elapsed_s, 3), "wait_s": None, "eta_s": None,
            "cancel_requested": job.control.cancel_event.is_set(),
        }
        if job.state == QUEUED:
            view["wait_s"] = round(self.wait_estimate(job), 1)
            view["eta_s"] = round(view["wait_s"] + self.typical_seconds(job.kind), 1)
        elif job.state == RUNNING:
            view["eta_s"] = None if job.eta_s() is None else round(max(job.eta_s(), 0.0), 1)
        if job.error:
            view["error"] = {"code": job.error_code, "message": job.error}
        if with_result and job.state == DONE:
            view["result"] = job.result
        return view

    def wait_estimate(self, job: Job) -> float:
        """Rough seconds before a queued job starts: what runs now plus what waits ahead of it,
        from the recent durations of each kind of job, shared over the workers."""
        with self._lock:
            ahead = []
            for j in self._pending:
                if j.id == job.id:
                    break
                ahead.append(self.typical_seconds(j.kind))
            running = [max(0.0, self.typical_seconds(j.kind) - j.elapsed_s)
                       for j in self._jobs.values() if j.state == RUNNING]
        return (sum(ahead) + sum(running)) / self.concurrency

    def position(self, job: Job) -> int:
        """0 = running or finished; 1 = next to run; ..."""
        with self._lock:
            for i, j in enumerate(self._pending):
                if j.id == job.id:
                    return i + 1
        return 0

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop. True: the job will end CANCELLED (at once if queued; at its next safe
        point, or when its function returns, if running). False: unknown or already finished."""
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
        with self._lock:  # submit() may add to _jobs from another thread meanwhile
            return sum(1 for j in self._jobs.values() if j.state == RUNNING)

    def typical_seconds(self, kind: str | None = None) -> float:
        """Mean duration of recent finished jobs (of `kind` if given and seen); 10 s before any."""
        with self._lock:  # workers add to _durations under the lock (a re-entrant one)
            pool = list(self._durations.get(kind) or ()) if kind is not None else None
            if not pool:
                pool = [d for ds in self._durations.values() for d in ds]
        return (sum(pool) / len(pool)) if pool else 10.0

    def shutdown(self, wait_s: float | None = None) -> bool:
        """Stop taking jobs; cancel the waiting ones and ask running ones to stop. With `wait_s`,
        also wait up to that long for the workers to end (a running job stops at its next safe
        point): a process that exits while a worker is inside a torch call can abort ("terminate
        called without an active exception"). True when no worker is left running."""
        with self._lock:
            self._stopped = True
            while self._pending:
                self._finish(self._pending.popleft(), CANCELLED, error="The server shut down.", code="cancelled")
            for j in self._jobs.values():
                if j.state == RUNNING:
                    j.control.cancel()
            self._lock.notify_all()
        others = [w for w in self._workers if w is not threading.current_thread()]
        if wait_s:
            deadline = time.monotonic() + wait_s
            for w in others:
                w.join(max(0.0, deadline - time.monotonic()))
        return not any(w.is_alive() for w in others)

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
        outcome: tuple | None = None
        result = None
        try:
            job.control.started = time.monotonic()
            job.control.check()
            result = job.fn(job.control)
        except JobCancelled as err:
            outcome = (CANCELLED, str(err), err.code)
        except HetaError as err:
            outcome = (FAILED, str(err), err.code, tuple(http_facts(err)))  # the instance's own answer
        except Exception as err:  # noqa: BLE001 - a bug in one job must not kill the worker
            log.exception("job %s (%s) failed", job.id, job.kind)
            outcome = (FAILED, f"Internal error ({type(err).__name__}); the server keeps running.", "internal")
        # Only now, with the exception and its frames (tensors, autograd graphs) released, tell the
        # waiters: a waiter that exits the process must not race this thread's cleanup.
        if outcome is None:
            self._finish(job, DONE, result=result)
        else:
            self._finish(job, *outcome)

    def _finish(self, job: Job, state: str, error: str | None = None, code: str | None = None,
                http: tuple | None = None, result: Any = None) -> None:
        """The one place a job ends. Under the lock: a cancel accepted before this point wins over
        the job's own outcome (see the module docstring), the duration of a DONE job is recorded
        before any waiter can look, and the waiters are woken."""
        with self._lock:
            if job.state in FINISHED:  # a job ends once: never overwrite its end
                return
            if state != CANCELLED and job.control.cancel_event.is_set():
                state, error, code, http, result = CANCELLED, "The job was cancelled.", "cancelled", None, None
            job.error_http = http
            job.result = result if state == DONE else None
            job.state, job.error, job.error_code, job.finished = state, error, code, time.time()
            if state == DONE and job.started is not None:
                self._durations[job.kind].append(job.finished - job.started)
            job.fn = None  # type: ignore[assignment]  # drop closures (model inputs) with the job
            self._lock.notify_all()

    def _progress(self, job: Job, stage: str, done: int, total: int) -> None:
        if stage != job.stage:
            job._stage_started = time.time()
        job.stage, job.done, job.total = stage, done, total

    def _expired(self, job: Job) -> bool:
        return (job.state in FINISHED and self.keep_finished_s is not None and job.finished is not None
                and self._clock() - job.finished > self.keep_finished_s)

    def _trim(self) -> None:
        """Drop finished jobs past their age, then the oldest beyond `keep_finished` (lock held)."""
        for j in [j for j in self._jobs.values() if self._expired(j)]:
            self._jobs.pop(j.id, None)
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        for j in sorted(finished, key=lambda j: j.seq)[: max(0, len(finished) - self.keep_finished)]:
            self._jobs.pop(j.id, None)
