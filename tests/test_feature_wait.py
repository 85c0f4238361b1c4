"""Waiting for one job without polling: JobQueue.wait blocks on the job's notification list
until its terminal transition (ack, dead-letter, cancel) signals it; it times out with a
JobsimError, wakes every waiter, uses no CPU while blocked, and on the embedded bridge does
not block other clients. Each test runs on fakeredis and on a real redis-server."""

from __future__ import annotations

import math
import threading
import time

import psutil
import pytest

from jobsim import JobQueue, JobsimError, JobStatus, WorkerPool, connect
from jobsim.control import MAX_WAIT_S
from jobsim.errors import InvalidInputError, JobNotFoundError, WaitTimeoutError
from jobsim.scripts import Ack, Nack
from tests.support.backends import backend_url
from tests.support.waiting import wait_until


def _blocked_on_notify(queue: JobQueue, job_id: str) -> bool:
    """Whether someone marked the job waited (the waiter then blocks right after)."""
    return bool(queue.client.hexists(queue.keys.job(job_id), "waited"))


def test_wait_returns_a_finished_job_at_once(make_queue) -> None:
    """A job already finished is returned without blocking, timeout 0 included."""
    queue = make_queue()
    job_id = queue.submit("noop")
    (job,) = queue.leases.exchange("w", 1).jobs
    queue.leases.complete([Ack(job.id, job.token, '{"ok":1}')])
    record = queue.wait(job_id, timeout_s=0)
    assert record.status == JobStatus.COMPLETED and record.result == {"ok": 1}


def test_wait_wakes_after_the_ack_and_every_waiter_wakes(make_queue) -> None:
    """Two threads block on one job; the ack comes after both blocked, and both return the
    completed record, each after the ack (the order of events, not a timing bound)."""
    queue = make_queue()
    job_id = queue.submit("noop")
    (job,) = queue.leases.exchange("w", 1).jobs
    events: list[str] = []
    lock = threading.Lock()

    def waiter(name: str) -> None:
        record = queue.wait(job_id, timeout_s=20)
        with lock:
            events.append(f"{name}:{record.status.value}")

    threads = [threading.Thread(target=waiter, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    wait_until(lambda: _blocked_on_notify(queue, job_id))
    time.sleep(0.05)  # let both reach BLPOP (either way they must wake)
    with lock:
        events.append("ack")
        queue.leases.complete([Ack(job.id, job.token)])
    for t in threads:
        t.join(20)
    assert events[0] == "ack"
    assert sorted(events[1:]) == ["a:completed", "b:completed"]


@pytest.mark.parametrize("end", ["dead-letter", "cancel"])
def test_wait_wakes_on_dead_letter_and_on_cancel(make_queue, end: str) -> None:
    """Every terminal transition signals: a job that fails for good, or is cancelled."""
    queue = make_queue()
    job_id = queue.submit("noop", max_retries=0)
    got: list[JobStatus] = []
    t = threading.Thread(target=lambda: got.append(queue.wait(job_id, timeout_s=20).status))
    t.start()
    wait_until(lambda: _blocked_on_notify(queue, job_id))
    if end == "cancel":
        queue.cancel(job_id)
    else:
        (job,) = queue.leases.exchange("w", 1).jobs
        queue.leases.fail([Nack(job.id, job.token, "boom", False)])
    t.join(20)
    assert got == [JobStatus.CANCELLED if end == "cancel" else JobStatus.FAILED]


def test_wait_times_out_with_a_jobsim_error_naming_the_status(make_queue) -> None:
    """An unfinished job: WaitTimeoutError (a JobsimError and a TimeoutError) after timeout_s."""
    queue = make_queue()
    job_id = queue.submit("noop", delay_s=60)
    with pytest.raises(WaitTimeoutError) as info:
        queue.wait(job_id, timeout_s=0.1)
    assert isinstance(info.value, JobsimError) and isinstance(info.value, TimeoutError)
    assert (info.value.job_id, info.value.status) == (job_id, "scheduled")


@pytest.mark.parametrize("timeout", [-1, math.nan, math.inf, MAX_WAIT_S + 1, "5", True, None])
def test_a_bad_timeout_is_refused(make_queue, timeout: object) -> None:
    """timeout_s must be a finite number in 0..MAX_WAIT_S."""
    queue = make_queue()
    job_id = queue.submit("noop")
    with pytest.raises(InvalidInputError) as info:
        queue.wait(job_id, timeout_s=timeout)  # type: ignore[arg-type]
    assert info.value.field == "timeout_s"


def test_waiting_for_an_unknown_job_raises_not_found(make_queue, client) -> None:
    """No such job: JobNotFoundError, and no key is created for it."""
    queue = make_queue()
    with pytest.raises(JobNotFoundError):
        queue.wait("nope", timeout_s=1)
    assert client.keys("*") == []


def test_a_pool_job_waited_for_comes_back_completed(make_queue) -> None:
    """The everyday use: submit to a running pool, wait for the result."""
    queue = make_queue()
    with WorkerPool(queue, concurrency=2):
        record = queue.wait(queue.submit("sleep", {"seconds": 0.05}), timeout_s=20)
    assert record.status == JobStatus.COMPLETED and record.attempts == 1


def test_a_waiting_thread_uses_no_cpu(make_queue) -> None:
    """Over a one-second wait, the waiting thread's own CPU time stays near zero: it blocks,
    it does not poll."""
    queue = make_queue()
    job_id = queue.submit("noop", delay_s=60)
    used: list[float] = []

    def thread_cpu_s(native_id: int) -> float:
        t = next(t for t in psutil.Process().threads() if t.id == native_id)
        return float(t.user_time + t.system_time)

    def waiter() -> None:
        me = threading.get_native_id()
        before = thread_cpu_s(me)
        with pytest.raises(WaitTimeoutError):
            queue.wait(job_id, timeout_s=1.0)
        used.append(thread_cpu_s(me) - before)

    t = threading.Thread(target=waiter)
    t.start()
    t.join(10)
    assert used and used[0] < 0.05, used


def test_a_blocked_wait_does_not_block_other_clients_of_the_bridge(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """Two clients by URL (on the embedded backend: its Unix-socket bridge): while one blocks
    in wait, the other submits, leases and acks, and the waiter then wakes."""
    url = backend_url(backend, request)
    waiting_side, working_side = JobQueue(connect(url), "w"), JobQueue(connect(url), "w")
    job_id = working_side.submit("noop")
    got: list[JobStatus] = []
    t = threading.Thread(target=lambda: got.append(waiting_side.wait(job_id, 20).status))
    t.start()
    wait_until(lambda: _blocked_on_notify(working_side, job_id))
    time.sleep(0.05)
    other = working_side.submit("noop")  # would hang if the bridge were blocked
    jobs = working_side.leases.exchange("x", 2).jobs
    assert {j.id for j in jobs} == {job_id, other}
    working_side.leases.complete([Ack(j.id, j.token) for j in jobs])
    t.join(20)
    assert got == [JobStatus.COMPLETED]
