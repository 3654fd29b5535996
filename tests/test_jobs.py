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
