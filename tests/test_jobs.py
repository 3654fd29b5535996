"""The job queue: order, concurrency, bounded length, cancel, time limit, failures isolated."""
import threading
import time

import pytest

from heta_lite.errors import InputError
from heta_lite.jobs import CANCELLED, DONE, FAILED, JobQueue, QueueFull


def _sleeper(seconds, steps=10, record=None):
    def fn(control):
        for i in range(steps):
            control.step("work", i, steps)
            time.sleep(seconds / steps)
        if record is not None:
            record.append(threading.current_thread().name)
        return "ok"

    return fn


def test_runs_in_order_off_the_calling_thread():
    q = JobQueue()
    record = []
    a = q.submit(_sleeper(0.1, record=record))
    b = q.submit(_sleeper(0.1, record=record))
    assert q.position(b) in (1, 2)
    assert q.wait(b.id, 5).state == DONE and q.get(a.id).state == DONE
    assert q.get(a.id).finished <= q.get(b.id).started + 1e-3
    assert all(name.startswith("heta-worker") for name in record)


def test_queue_positions_and_full_queue():
    q = JobQueue(max_queued=2)
    first = q.submit(_sleeper(0.5))
    time.sleep(0.05)  # first is running now
    second = q.submit(_sleeper(0.1))
    third = q.submit(_sleeper(0.1))
    assert (q.position(first), q.position(second), q.position(third)) == (0, 1, 2)
    with pytest.raises(QueueFull) as err:
        q.submit(_sleeper(0.1))
    assert err.value.retry_after_s >= 1 and "try again" in str(err.value)
    q.wait(third.id, 5)


def test_concurrency_is_bounded():
    q = JobQueue(concurrency=2)
    active, peak = [0], [0]
    lock = threading.Lock()

    def fn(control):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.1)
        with lock:
            active[0] -= 1

    jobs = [q.submit(fn) for _ in range(6)]
    for j in jobs:
        q.wait(j.id, 5)
    assert peak[0] == 2


def test_cancel_queued_and_running():
    q = JobQueue()
    running = q.submit(_sleeper(2.0, steps=40))
    queued = q.submit(_sleeper(0.1))
    time.sleep(0.1)
    assert q.cancel(queued.id) and q.get(queued.id).state == CANCELLED
    assert q.cancel(running.id)
    assert q.wait(running.id, 2).state == CANCELLED
    assert not q.cancel("no-such-job")


def test_time_limit_and_errors_do_not_kill_the_worker():
    q = JobQueue(time_limit_s=0.2)
    slow = q.submit(_sleeper(2.0, steps=40))
    assert q.wait(slow.id, 3).state == FAILED and "time limit" in q.get(slow.id).error

    def bad_input(control):
        raise InputError("The prompt is empty.")

    def bug(control):
        raise ZeroDivisionError

    j1, j2 = q.submit(bad_input), q.submit(bug)
    assert q.wait(j1.id, 2).error == "The prompt is empty." and q.get(j1.id).error_code == "bad_input"
    assert q.wait(j2.id, 2).state == FAILED and "Internal error" in q.get(j2.id).error
    assert q.wait(q.submit(_sleeper(0.05)).id, 2).state == DONE  # still serving


def test_progress_and_eta():
    q = JobQueue()
    j = q.submit(_sleeper(0.6, steps=6))
    time.sleep(0.35)
    assert j.stage == "work" and 0 < j.done < 6
    assert j.eta_s() is not None and j.eta_s() > 0
    q.wait(j.id, 3)


def test_status_view_is_json_ready_with_position_and_wait():
    import json

    q = JobQueue()
    first = q.submit(_sleeper(0.4, steps=8), kind="explain")
    time.sleep(0.1)
    second = q.submit(_sleeper(0.1), kind="explain")
    s1, s2 = q.status(first.id), q.status(second.id)
    json.dumps(s1), json.dumps(s2)
    assert s1["state"] == "running" and s1["queue_position"] == 0 and s1["progress"]["stage"] == "work"
    assert s2["state"] == "queued" and s2["queue_position"] == 1 and s2["wait_s"] > 0 and s2["eta_s"] >= s2["wait_s"]
    q.wait(second.id, 5)
    done = q.status(second.id, with_result=True)
    assert done["state"] == "done" and done["result"] == "ok" and done["elapsed_s"] > 0
    assert q.status("no-such-job") is None


def test_typical_seconds_are_kept_per_kind():
    q = JobQueue()
    q.wait(q.submit(lambda c: time.sleep(0.3), kind="explain").id, 5)
    q.wait(q.submit(lambda c: None, kind="estimate").id, 5)
    assert q.typical_seconds("explain") > 0.25 > q.typical_seconds("estimate")
    assert q.typical_seconds("never-seen") == pytest.approx(q.typical_seconds())


def test_failed_job_view_has_the_message():
    q = JobQueue()

    def bad(control):
        raise InputError("The target position is out of range; pick a token inside the prompt.")

    j = q.submit(bad)
    q.wait(j.id, 2)
    assert q.status(j.id)["error"] == {"code": "bad_input",
                                       "message": "The target position is out of range; pick a token inside the prompt."}


def test_shutdown_cancels_waiting_and_running_jobs():
    q = JobQueue()
    running = q.submit(_sleeper(2.0, steps=40))
    waiting = q.submit(_sleeper(0.1))
    time.sleep(0.1)
    q.shutdown()
    assert q.get(waiting.id).state == CANCELLED
    assert q.wait(running.id, 2).state == CANCELLED
    with pytest.raises(QueueFull):
        q.submit(_sleeper(0.1))


def test_cancel_wins_over_a_job_that_has_not_started_its_first_step():
    q = JobQueue()
    gate = threading.Event()

    def slow_start(control):
        gate.wait(2)
        control.step("work", 0, 1)  # the first safe point: cancellation takes effect here
        return "should not get here"

    j = q.submit(slow_start)
    time.sleep(0.05)
    q.cancel(j.id)
    assert q.status(j.id)["cancel_requested"]
    gate.set()
    assert q.wait(j.id, 2).state == CANCELLED and q.get(j.id).result is None


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
    q.cancel(j2.id)
    assert q.wait(j2.id, 60).state == CANCELLED and j2.result is None
