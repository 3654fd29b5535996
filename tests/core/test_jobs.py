"""The job queue: order, concurrency, bounded length, cancel (also with several workers and racing
completion), time limit, failures isolated.

Synchronisation is by events, conditions and barriers (a job holds at a gate until the test
releases it), never by sleeping and hoping a thread got somewhere. WAIT bounds every wait so a
broken queue fails the test instead of hanging it.
"""
import threading
import time

import pytest

from heta_lite.errors import InputError, QueueFull
from heta_lite.jobs import CANCELLED, DONE, FAILED, FINISHED, QUEUED, RUNNING, JobQueue

WAIT = 10.0


def _gated(started: threading.Event | None = None, gate: threading.Event | None = None, steps: int = 3,
           record: list | None = None, result="ok"):
    """A job that reports `steps` progress steps, says it started, then holds until `gate` is set
    (checking for cancellation at a safe point after it)."""
    def fn(control):
        for i in range(steps):
            control.step("work", i, steps)
        if started is not None:
            started.set()
        if gate is not None:
            assert gate.wait(WAIT), "the test never opened the gate"
        control.step("work", steps, steps)
        if record is not None:
            record.append(threading.current_thread().name)
        return result

    return fn


def _until_cancelled(started: threading.Event):
    """A job that runs until it is cancelled (it waits on its own cancel event between steps)."""
    def fn(control):
        started.set()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            control.step("work", 0, 1)
            control.cancel_event.wait(0.5)
        return "never cancelled"

    return fn


def _waiters(q: JobQueue, job_id: str, n: int = 3):
    """n threads blocked in q.wait(job_id); returns (threads, what each saw)."""
    seen: list = []

    def w():
        seen.append(q.wait(job_id, WAIT).state)

    threads = [threading.Thread(target=w) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, seen


def _joined(threads) -> bool:
    for t in threads:
        t.join(WAIT)
    return not any(t.is_alive() for t in threads)


def test_runs_in_order_off_the_calling_thread():
    q = JobQueue()
    record, started, gate = [], threading.Event(), threading.Event()
    a = q.submit(_gated(started, gate, record=record))
    assert started.wait(WAIT)
    b = q.submit(_gated(record=record))
    assert (q.position(a), q.position(b)) == (0, 1) and q.get(b.id).state == QUEUED
    gate.set()
    assert q.wait(b.id, WAIT).state == DONE and q.get(a.id).state == DONE
    assert q.get(a.id).finished <= q.get(b.id).started
    assert len(record) == 2 and all(name.startswith("heta-worker") for name in record)


def test_queue_positions_and_full_queue():
    q = JobQueue(max_queued=2)
    started, gate = threading.Event(), threading.Event()
    first = q.submit(_gated(started, gate))
    assert started.wait(WAIT)  # first is running now
    second = q.submit(_gated())
    third = q.submit(_gated())
    assert (q.position(first), q.position(second), q.position(third)) == (0, 1, 2)
    with pytest.raises(QueueFull) as err:
        q.submit(_gated())
    assert err.value.retry_after_s >= 1 and "try again" in str(err.value)
    gate.set()
    assert q.wait(third.id, WAIT).state == DONE


def test_concurrency_is_bounded():
    """Six jobs on two workers: two run together (each job waits, bounded, for a partner), and
    no job ever sees more than two running."""
    q = JobQueue(concurrency=2)
    cond = threading.Condition()
    active, peak, started, seen_running = [0], [0], [0], []
    n = 6

    def fn(control):
        with cond:
            active[0] += 1
            started[0] += 1
            peak[0] = max(peak[0], active[0])
            seen_running.append(q.running)
            cond.notify_all()
            # overlap with another job (the other worker is free, so one comes) unless none is left
            cond.wait_for(lambda: active[0] >= 2 or started[0] == n, timeout=WAIT)
            active[0] -= 1

    jobs = [q.submit(fn) for _ in range(n)]
    for j in jobs:
        assert q.wait(j.id, 3 * WAIT).state == DONE
    assert peak[0] == 2 and max(seen_running) <= 2


def test_cancel_queued_and_running():
    q = JobQueue()
    started = threading.Event()
    running = q.submit(_until_cancelled(started))
    assert started.wait(WAIT)
    ran = []
    queued = q.submit(lambda control: ran.append(1))
    assert q.get(queued.id).state == QUEUED
    assert q.cancel(queued.id) and q.get(queued.id).state == CANCELLED  # at once: it never started
    assert q.cancel(running.id)
    assert q.wait(running.id, WAIT).state == CANCELLED and q.get(running.id).result is None
    assert not q.cancel(running.id) and not q.cancel(queued.id)  # already finished: nothing to do
    assert not q.cancel("no-such-job")
    assert q.wait(q.submit(lambda control: "next").id, WAIT).state == DONE and ran == []


def test_time_limit_and_errors_do_not_kill_the_worker():
    q = JobQueue(time_limit_s=0.05)
    slow = q.submit(_until_cancelled(threading.Event()))  # runs until the time limit stops it
    assert q.wait(slow.id, 2 * WAIT).state == FAILED and "time limit" in q.get(slow.id).error
    assert q.get(slow.id).error_code == "timeout"

    def bad_input(control):
        raise InputError("The prompt is empty.")

    def bug(control):
        raise ZeroDivisionError

    j1, j2 = q.submit(bad_input), q.submit(bug)
    assert q.wait(j1.id, WAIT).error == "The prompt is empty." and q.get(j1.id).error_code == "bad_input"
    assert q.wait(j2.id, WAIT).state == FAILED and "Internal error" in q.get(j2.id).error
    assert q.wait(q.submit(lambda control: "ok").id, WAIT).state == DONE  # still serving


def test_progress_and_eta():
    q = JobQueue()
    reached, gate = threading.Event(), threading.Event()

    def fn(control):
        for i in range(3):
            control.step("work", i, 6)
            time.sleep(0.01)  # the job's own work: an ETA needs time to have passed in the stage
        control.step("work", 3, 6)
        reached.set()
        assert gate.wait(WAIT)

    j = q.submit(fn)
    assert reached.wait(WAIT)
    assert j.stage == "work" and (j.done, j.total) == (3, 6)
    assert j.eta_s() is not None and j.eta_s() > 0
    gate.set()
    assert q.wait(j.id, WAIT).state == DONE and j.eta_s() is None  # no ETA once finished


def test_status_view_is_json_ready_with_position_and_wait():
    import json

    q = JobQueue()
    started, gate = threading.Event(), threading.Event()
    first = q.submit(_gated(started, gate), kind="explain")
    assert started.wait(WAIT)
    second = q.submit(_gated(), kind="explain")
    s1, s2 = q.status(first.id), q.status(second.id)
    json.dumps(s1), json.dumps(s2)
    assert s1["state"] == "running" and s1["queue_position"] == 0 and s1["progress"]["stage"] == "work"
    assert s2["state"] == "queued" and s2["queue_position"] == 1 and s2["wait_s"] > 0 and s2["eta_s"] >= s2["wait_s"]
    gate.set()
    q.wait(second.id, WAIT)
    done = q.status(second.id, with_result=True)
    assert done["state"] == "done" and done["result"] == "ok"
    assert done["elapsed_s"] == round(second.finished - second.started, 3)  # the run time, not the age
    assert q.status("no-such-job") is None


def test_typical_seconds_are_kept_per_kind():
    q = JobQueue()
    assert q.typical_seconds("explain") == 10.0  # nothing seen yet: the default
    q.wait(q.submit(lambda c: time.sleep(0.3), kind="explain").id, WAIT)  # a job that takes 0.3 s
    q.wait(q.submit(lambda c: None, kind="estimate").id, WAIT)
    assert q.typical_seconds("explain") >= 0.3 > q.typical_seconds("estimate")
    assert q.typical_seconds("never-seen") == pytest.approx(q.typical_seconds())
    assert q.typical_seconds() == pytest.approx((q.typical_seconds("explain") + q.typical_seconds("estimate")) / 2)


def test_a_finished_jobs_duration_is_recorded_before_waiters_wake():
    """A waiter woken by a finished job sees its duration in typical_seconds at once, even if the
    worker is descheduled right after waking it (the hook holds the worker there)."""
    after_finish = threading.Event()

    class HeldQueue(JobQueue):
        def _finish(self, job, *args, **kwargs):
            super()._finish(job, *args, **kwargs)
            if job.kind == "held":
                after_finish.wait(WAIT)

    q = HeldQueue()
    try:
        j = q.submit(lambda c: time.sleep(0.05), kind="held")
        assert q.wait(j.id, WAIT).state == DONE
        assert q.typical_seconds("held") != 10.0 and q.typical_seconds("held") >= 0.05
    finally:
        after_finish.set()


def test_failed_job_view_has_the_message():
    q = JobQueue()

    def bad(control):
        raise InputError("The target position is out of range; pick a token inside the prompt.")

    j = q.submit(bad)
    q.wait(j.id, WAIT)
    assert q.status(j.id)["error"] == {"code": "bad_input",
                                       "message": "The target position is out of range; pick a token inside the prompt."}


def test_shutdown_cancels_waiting_and_running_jobs():
    q = JobQueue()
    started = threading.Event()
    running = q.submit(_until_cancelled(started))
    assert started.wait(WAIT)
    waiting = q.submit(_gated())
    threads, seen = _waiters(q, waiting.id)
    q.shutdown()
    assert q.get(waiting.id).state == CANCELLED
    assert q.wait(running.id, WAIT).state == CANCELLED
    assert _joined(threads) and seen == [CANCELLED] * 3
    with pytest.raises(QueueFull):
        q.submit(_gated())


def test_shutdown_can_wait_for_the_workers_to_end():
    q = JobQueue(concurrency=2)
    started, stuck_started, release = threading.Event(), threading.Event(), threading.Event()
    running = q.submit(_until_cancelled(started))

    def stuck(control):  # ignores cancellation until released
        stuck_started.set()
        assert release.wait(WAIT)

    q.submit(stuck)
    assert started.wait(WAIT) and stuck_started.wait(WAIT)
    assert not q.shutdown(wait_s=0.05)  # one worker is held by a job that can't stop yet
    assert q.wait(running.id, WAIT).state == CANCELLED  # the cooperative one stops at its safe point
    release.set()
    assert q.shutdown(wait_s=WAIT)  # now every worker has ended
    assert not any(w.is_alive() for w in q._workers)


def test_cancel_wins_over_a_job_that_has_not_started_its_first_step():
    q = JobQueue()
    entered, gate = threading.Event(), threading.Event()

    def slow_start(control):
        entered.set()
        assert gate.wait(WAIT)
        control.step("work", 0, 1)  # the first safe point: cancellation takes effect here
        return "should not get here"

    j = q.submit(slow_start)
    assert entered.wait(WAIT)
    assert q.cancel(j.id)
    assert q.status(j.id)["cancel_requested"] and q.status(j.id)["state"] == RUNNING
    gate.set()
    assert q.wait(j.id, WAIT).state == CANCELLED and q.get(j.id).result is None


# -- several workers, and cancel racing completion ------------------------------------------------
def test_several_workers_cancel_one_running_and_one_queued_job():
    q = JobQueue(concurrency=3)
    gates = [threading.Event() for _ in range(3)]
    starts = [threading.Event() for _ in range(3)]
    running = [q.submit(_gated(s, g, result=i)) for i, (s, g) in enumerate(zip(starts, gates))]
    assert all(s.wait(WAIT) for s in starts)
    assert q.running == 3
    ran = []
    queued = q.submit(lambda control: ran.append("queued job ran"))
    behind = q.submit(lambda control: "behind")
    assert q.position(queued) == 1 and q.position(behind) == 2
    threads, seen = _waiters(q, running[1].id)
    assert q.cancel(queued.id) and q.get(queued.id).state == CANCELLED
    assert q.position(behind) == 1
    assert q.cancel(running[1].id)
    gates[1].set()  # it reaches its next safe point and stops there
    assert q.wait(running[1].id, WAIT).state == CANCELLED and running[1].result is None
    assert _joined(threads) and seen == [CANCELLED] * 3
    assert q.wait(behind.id, WAIT).state == DONE  # the freed worker took the next job
    for g in gates:
        g.set()
    assert [q.wait(j.id, WAIT).state for j in running] == [DONE, CANCELLED, DONE]
    assert [j.result for j in running] == [0, None, 2] and ran == []


def test_cancel_after_the_last_safe_point_still_cancels():
    """A job past its last control.step is asked to stop just before its function returns: the
    cancel was accepted (True), so the job ends CANCELLED, its result dropped, and every waiter
    wakes up seeing that one state."""
    q = JobQueue(concurrency=2)
    past_last_step, may_return = threading.Event(), threading.Event()

    def fn(control):
        control.step("work", 1, 1)
        past_last_step.set()
        assert may_return.wait(WAIT)
        return "computed"

    j = q.submit(fn)
    threads, seen = _waiters(q, j.id)
    assert past_last_step.wait(WAIT)
    assert q.cancel(j.id)  # accepted while the function is still running
    may_return.set()
    assert q.wait(j.id, WAIT).state == CANCELLED
    assert j.result is None and j.error_code == "cancelled"
    assert _joined(threads) and seen == [CANCELLED] * 3
    assert not q.status(j.id, with_result=True).get("result")


def test_cancel_after_the_job_finished_changes_nothing():
    q = JobQueue(concurrency=2)
    j = q.submit(lambda control: "computed")
    assert q.wait(j.id, WAIT).state == DONE
    assert not q.cancel(j.id)
    assert j.state == DONE and j.result == "computed" and not q.status(j.id)["cancel_requested"]


def test_cancel_in_the_window_between_return_and_finish():
    """The narrowest race: the function has returned and the worker is about to record the end
    when the cancel comes (the hook holds the worker exactly there). One terminal state, agreeing
    with what cancel answered, and the waiters are woken."""
    at_finish, release = threading.Event(), threading.Event()

    class HeldQueue(JobQueue):
        def _finish(self, job, *args, **kwargs):
            if job.kind == "held":
                at_finish.set()
                assert release.wait(WAIT)
            super()._finish(job, *args, **kwargs)

    q = HeldQueue(concurrency=2)
    j = q.submit(lambda control: "computed", kind="held")
    threads, seen = _waiters(q, j.id)
    assert at_finish.wait(WAIT)
    accepted = q.cancel(j.id)
    release.set()
    assert accepted  # the job had not finished when cancel was asked ...
    assert q.wait(j.id, WAIT).state == CANCELLED and j.result is None  # ... so the cancel is honoured
    assert _joined(threads) and seen == [CANCELLED] * 3


@pytest.mark.parametrize("workers", [1, 3])
def test_cancel_racing_completion_ends_in_one_consistent_state(workers):
    """Many jobs, each finishing at the same moment as a cancel is requested (job and canceller
    leave a two-party barrier together). Whatever the interleaving: cancel() answered True
    exactly when the job ended CANCELLED (no result); otherwise it ended DONE with its result;
    every waiter woke up seeing that state."""
    q = JobQueue(concurrency=workers, max_queued=64)
    n = 24
    barriers = [threading.Barrier(2, timeout=WAIT) for _ in range(n)]

    def job(i):
        def fn(control):
            control.step("work", 0, 1)
            barriers[i].wait()
            return i

        return fn

    jobs = [q.submit(job(i)) for i in range(n)]
    answers = [None] * n

    def canceller(i):
        barriers[i].wait()
        answers[i] = q.cancel(jobs[i].id)

    all_waiters = []
    for j in jobs:
        threads, seen = _waiters(q, j.id, n=2)
        all_waiters.append((threads, seen))
    cancellers = [threading.Thread(target=canceller, args=(i,)) for i in range(n)]
    for t in cancellers:
        t.start()
    assert _joined(cancellers)
    for i, j in enumerate(jobs):
        final = q.wait(j.id, WAIT)
        assert final.state in FINISHED
        if answers[i]:
            assert (final.state, final.result, final.error_code) == (CANCELLED, None, "cancelled"), i
        else:
            assert (final.state, final.result, final.error) == (DONE, i, None), i
        threads, seen = all_waiters[i]
        assert _joined(threads) and seen == [final.state] * 2
    assert q.running == 0 and q.depth == 0


@pytest.mark.slow
def test_real_engine_job_reports_progress_and_cancels(smollm):
    """The real engine through the queue: the job reports its stages, finishes with an
    Explanation, and a second one is cancelled at a safe point between passes."""
    from heta_lite.engine import explain
    from heta_lite.settings import HetaSettings
    from heta_lite.targets import TargetSpec

    q = JobQueue()
    stages = set()
    spec = TargetSpec(position=5, chat=False)

    def job(control):
        inner = control.progress

        def spy(stage, done, total):
            stages.add(stage)
            inner(stage, done, total)

        control.progress = spy
        return explain(smollm, "The capital of France is Paris", spec, HetaSettings.preset("fast"), control=control)

    j = q.submit(job)
    assert q.wait(j.id, 120).state == DONE, q.get(j.id).error
    assert j.result.context.target_pos == 5 and stages
    assert q.status(j.id)["progress"]["stage"] in stages

    started = threading.Event()

    def job2(control):
        control.progress = lambda *a: started.set()
        return explain(smollm, "The capital of France is Paris", spec, HetaSettings.preset("accurate"),
                       control=control)

    j2 = q.submit(job2)
    assert started.wait(60)
    assert q.cancel(j2.id)
    assert q.wait(j2.id, 60).state == CANCELLED and j2.result is None
    assert q.shutdown(wait_s=60)  # no worker left inside torch when the process exits


# ---- ownership and expiry (issue #18 item 2) ------------------------------------------------
def test_a_job_is_found_by_others_only_with_its_token():
    q = JobQueue()
    try:
        job = q.submit(lambda control: "secret report")
        assert q.wait(job.id, WAIT).state == DONE
        assert len(job.token) >= 32 and job.token not in repr(job)
        assert q.owned(job.id, job.token) is job
        other = q.submit(lambda control: "x")
        for wrong in (None, "", "guess", other.token, job.token[:-1], job.token + "x", "é" * 5, "\udc80"):
            assert q.owned(job.id, wrong) is None, wrong  # a wrong token, even another job's, finds nothing
        assert q.owned("no-such-job", job.token) is None
        assert job.token not in str(q.status(job.id, with_result=True))  # never in a status view
    finally:
        q.shutdown()


def test_finished_jobs_expire_by_age_as_well_as_by_count():
    now = [time.time()]
    q = JobQueue(keep_finished=100, keep_finished_s=3600, clock=lambda: now[0])
    try:
        old = q.submit(lambda control: "old")
        assert q.wait(old.id, WAIT).state == DONE
        started, gate = threading.Event(), threading.Event()
        running = q.submit(_gated(started, gate))
        assert started.wait(WAIT)
        now[0] += 3599
        assert q.get(old.id) is old and q.owned(old.id, old.token) is old  # within the hour: kept
        now[0] += 2
        assert q.get(old.id) is None and q.owned(old.id, old.token) is None and q.status(old.id) is None
        assert q.get(running.id) is running  # an unfinished job never expires, however old
        gate.set()
        assert q.wait(running.id, WAIT).state == DONE
        fresh = q.submit(lambda control: "fresh")  # a submit also sweeps expired jobs out
        q.wait(fresh.id, WAIT)
        now[0] += 3601
        q.submit(lambda control: "sweep")
        assert fresh.id not in q._jobs and running.id not in q._jobs
    finally:
        gate.set()
        q.shutdown()


def test_a_failed_job_keeps_its_errors_answer_unless_a_cancel_won():
    from heta_lite.errors import ResourceLimitError

    q = JobQueue()
    try:
        def fail(control):
            raise ResourceLimitError("too big")

        job = q.submit(fail)
        assert q.wait(job.id, WAIT).state == FAILED
        assert (job.error_code, job.error_http) == ("resource_limit", (507, "out_of_memory", None))
        started, gate = threading.Event(), threading.Event()

        def fail_after_cancel(control):
            started.set()
            assert gate.wait(WAIT)
            raise ResourceLimitError("too big")

        job = q.submit(fail_after_cancel)
        assert started.wait(WAIT)
        assert q.cancel(job.id)
        gate.set()
        assert q.wait(job.id, WAIT).state == CANCELLED
        assert (job.error_code, job.error_http) == ("cancelled", None)
    finally:
        gate.set()
        q.shutdown()
