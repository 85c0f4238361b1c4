"""Cancel: a scheduled, queued or retrying job ends `cancelled` at once and never runs; a
running one is asked to stop (its task sees it through JobContext) and ends `cancelled`
however its lease ends; a finished job cannot be cancelled; cancel racing completion has
exactly one winner. Each test runs on fakeredis and on a real redis-server."""

from __future__ import annotations

import random
import threading
import time

import pytest

import tests.support.cancel_tasks  # noqa: F401  (registers cancel_coop, cancel_stubborn)
from jobsim import JobQueue, JobStatus, Lease, QueueConfig, WorkerPool
from jobsim.connection import server_time_s
from jobsim.errors import (
    InvalidInputError,
    InvalidStateError,
    JobFinishedError,
    JobNotFoundError,
)
from jobsim.models import Outcome
from jobsim.scripts import Ack, GiveBack, Nack
from tests.support.waiting import wait_until

BEAT = QueueConfig(lease=Lease(duration_s=2.0, heartbeat_s=0.05))


def _totals(queue: JobQueue) -> dict[str, int]:
    return queue.stats().totals


def test_a_waiting_job_is_cancelled_at_once_and_never_runs(make_queue) -> None:
    """Queued, scheduled and retrying jobs end cancelled in one call and are never leased."""
    queue = make_queue()
    retrying = queue.submit("noop", 3)
    (job,) = queue.leases.exchange("w", 1).jobs
    queued = queue.submit("noop", 1)
    scheduled = queue.submit("noop", 2, delay_s=60)
    queue.leases.fail([Nack(job.id, job.token, "boom", True, 60_000_000)])
    assert queue.status(retrying).status == JobStatus.RETRYING
    for job_id in (queued, scheduled, retrying):
        assert queue.cancel(job_id) is True
        record = queue.status(job_id)
        assert record.status == JobStatus.CANCELLED and record.finished_at is not None
    stats = queue.stats()
    assert (stats.queued, stats.scheduled, stats.retrying, stats.cancelled) == (0, 0, 0, 3)
    assert stats.totals["cancelled"] == 3
    assert sorted(queue.job_ids("cancelled")) == sorted([queued, scheduled, retrying])
    assert queue.leases.exchange("w", 10).jobs == []


def test_cancel_is_idempotent_and_safe_to_re_send(make_queue) -> None:
    """A re-sent cancel answers True again and counts nothing twice, waiting or running."""
    queue = make_queue()
    waiting = queue.submit("noop")
    assert queue.cancel(waiting) and queue.cancel(waiting)
    running = queue.submit("noop")
    queue.leases.exchange("w", 1)
    assert queue.cancel(running) and queue.cancel(running)
    totals = _totals(queue)
    assert (totals["cancelled"], totals["cancel_requested"]) == (1, 1)
    assert queue.status(running).status == JobStatus.PROCESSING
    assert queue.status(running).cancel_requested_at is not None


def test_a_finished_job_cannot_be_cancelled_and_nothing_changes(make_queue) -> None:
    """Completed or failed: JobFinishedError (an InvalidStateError) naming the status; unknown
    id: JobNotFoundError; a non-string id: InvalidInputError."""
    queue = make_queue()
    done, dead = queue.submit("noop", 1), queue.submit("noop", 2, max_retries=0)
    jobs = {j.id: j for j in queue.leases.exchange("w", 2).jobs}
    queue.leases.complete([Ack(done, jobs[done].token)])
    queue.leases.fail([Nack(dead, jobs[dead].token, "boom", False)])
    for job_id, status in ((done, "completed"), (dead, "failed")):
        with pytest.raises(JobFinishedError) as info:
            queue.cancel(job_id)
        assert isinstance(info.value, InvalidStateError)
        assert (info.value.job_id, info.value.status) == (job_id, status)
        assert queue.status(job_id).status == status
    with pytest.raises(JobNotFoundError):
        queue.cancel("no-such-job")
    with pytest.raises(InvalidInputError):
        queue.cancel(7)  # type: ignore[arg-type]
    assert "cancelled" not in _totals(queue)


@pytest.mark.parametrize("how", ["ack", "fail", "release", "unlease", "expiry"])
def test_a_running_job_ends_cancelled_however_its_lease_ends(make_queue, how: str) -> None:
    """After a cancel reaches a leased job, its heartbeat names it, and its ack, failure,
    give-back, unlease or expiry all end it cancelled: no result, no retry, no redelivery."""
    queue = make_queue(QueueConfig(lease=Lease(duration_s=0.2)))
    job_id = queue.submit("noop", max_retries=3)
    (job,) = queue.leases.exchange("w", 1).jobs
    assert queue.cancel(job_id)
    assert queue.leases.beat("w", [(job.id, job.token)], "").cancelling == [job_id]
    if how == "ack":
        queue.leases.complete([Ack(job.id, job.token, '"result"')])
    elif how == "fail":
        queue.leases.fail([Nack(job.id, job.token, "JobCancelledError: cancelled", True, 0)])
    elif how == "release":
        queue.leases.release([GiveBack(job.id, job.token, "cancelled", "killed")])
    elif how == "unlease":
        queue.leases.unlease([job])
    else:
        now = server_time_s(queue.client)
        wait_until(lambda: server_time_s(queue.client) > now + 0.25, timeout_s=5)
        queue.leases.exchange("x", 0)
    record = queue.status(job_id)
    assert record.status == JobStatus.CANCELLED and record.result is None
    assert record.attempts == (0 if how == "unlease" else 1)
    if how != "unlease":
        assert record.attempt_log[-1].outcome == Outcome.CANCELLED
    totals = _totals(queue)
    assert totals["cancelled"] == 1
    assert "completed" not in totals and "retried" not in totals and "expired" not in totals
    assert queue.leases.exchange("w", 5).jobs == []


def test_a_late_ack_of_a_cancelled_job_is_a_counted_fenced_no_op(make_queue) -> None:
    """Once a cancelled job's lease was taken back, the worker's late ack changes nothing and
    counts as fenced; the same give-back sent again is a replay."""
    queue = make_queue()
    job_id = queue.submit("noop")
    (job,) = queue.leases.exchange("w", 1).jobs
    queue.cancel(job_id)
    give_back = GiveBack(job.id, job.token, "cancelled", "killed")
    queue.leases.release([give_back])
    assert queue.leases.complete([Ack(job.id, job.token, '"late"')]) == [job_id]
    queue.leases.release([give_back])
    record = queue.status(job_id)
    assert record.status == JobStatus.CANCELLED and record.fenced == 1 and record.result is None
    totals = _totals(queue)
    assert (totals["fenced"], totals["replayed"], totals["cancelled"]) == (1, 1, 1)


def test_a_cooperative_thread_task_stops_when_cancelled(make_queue) -> None:
    """The task sees ctx.cancelled at the worker's next heartbeat, raises, and the job ends
    cancelled after one attempt, long before it would have finished."""
    queue = make_queue(BEAT)
    with WorkerPool(queue, concurrency=1, grace_s=30):
        job_id = queue.submit("cancel_coop", {"seconds": 30})
        wait_until(lambda: queue.status(job_id).status == JobStatus.PROCESSING)
        assert queue.cancel(job_id)
        job = queue.wait(job_id, timeout_s=20)
        after = queue.submit("noop")
        assert queue.wait(after, timeout_s=20).status == JobStatus.COMPLETED
    assert job.status == JobStatus.CANCELLED and job.attempts == 1
    assert job.attempt_log[0].outcome == Outcome.CANCELLED
    assert _totals(queue).get("fenced", 0) == 0


def test_a_thread_task_ignoring_the_cancel_loses_its_lease_after_the_grace(make_queue) -> None:
    """A task that never looks at its context: after grace_s the supervisor takes the lease
    back, the job ends cancelled, and the result it sends when it returns is fenced."""
    queue = make_queue(BEAT)
    with WorkerPool(queue, concurrency=1, grace_s=0.2):
        job_id = queue.submit("cancel_stubborn", {"seconds": 1.5})
        wait_until(lambda: queue.status(job_id).status == JobStatus.PROCESSING)
        queue.cancel(job_id)
        assert queue.wait(job_id, timeout_s=20).status == JobStatus.CANCELLED
        wait_until(lambda: queue.status(job_id).fenced == 1)
    assert queue.status(job_id).status == JobStatus.CANCELLED
    assert _totals(queue)["cancelled"] == 1


def test_a_process_task_ignoring_the_cancel_is_killed_after_the_grace(make_queue) -> None:
    """In process mode the parent kills the child running a cancelled job past the grace
    period; the job ends cancelled and a new child serves the queue."""
    queue = make_queue(BEAT)
    with WorkerPool(queue, concurrency=1, mode="process", grace_s=0.2) as pool:
        job_id = queue.submit("cancel_stubborn", {"seconds": 60})
        wait_until(lambda: queue.status(job_id).status == JobStatus.PROCESSING, timeout_s=30)
        pid = pool.worker_pids()[0]
        queue.cancel(job_id)
        assert queue.wait(job_id, timeout_s=30).status == JobStatus.CANCELLED
        after = queue.submit("noop")
        assert queue.wait(after, timeout_s=30).status == JobStatus.COMPLETED
        assert pool.worker_pids()[0] != pid
    totals = _totals(queue)
    assert totals["cancelled"] == 1 and "crashed" not in totals


def test_cancel_racing_completion_has_exactly_one_winner(make_queue) -> None:
    """Ack and cancel released together (each after a seeded random pause of up to 2 ms, so
    either may come first), many times: each job ends either completed (the cancel raised
    JobFinishedError) or cancelled (the cancel answered True, the result was dropped), never
    both; the counters say the same, and both winners occur."""
    queue = make_queue()
    n = 60
    rng = random.Random(12)
    ids = [queue.submit("noop", i) for i in range(n)]
    jobs = {j.id: j for j in queue.leases.exchange("w", n).jobs}
    outcome: dict[str, str] = {}
    for job_id in ids:
        start = threading.Barrier(2)
        pause_ack, pause_cancel = rng.uniform(0, 0.002), rng.uniform(0, 0.002)

        def ack(job_id: str = job_id, start: threading.Barrier = start, p: float = pause_ack):
            start.wait()
            time.sleep(p)
            queue.leases.complete([Ack(job_id, jobs[job_id].token, '"r"')])

        acker = threading.Thread(target=ack)
        acker.start()
        start.wait()
        time.sleep(pause_cancel)
        try:
            outcome[job_id] = "cancelled" if queue.cancel(job_id) else "?"
        except JobFinishedError:
            outcome[job_id] = "completed"
        acker.join()
    for job_id in ids:
        record = queue.status(job_id)
        assert record.status == outcome[job_id]
        assert (record.result is None) == (outcome[job_id] == "cancelled")
    totals = _totals(queue)
    won_by_cancel = sum(v == "cancelled" for v in outcome.values())
    assert totals.get("cancelled", 0) == won_by_cancel
    assert totals.get("completed", 0) == n - won_by_cancel
    assert totals.get("fenced", 0) == 0
    assert 0 < won_by_cancel < n, "the calls never raced"


def test_cancel_racing_a_pool_has_exactly_one_winner_per_job(make_queue) -> None:
    """Each job cancelled a seeded random 0-3 ms after its submit, while a pool races to run
    it: every one ends completed or cancelled, as its cancel call said (True: cancelled,
    queued or mid-run; JobFinishedError: completed), and completed + cancelled == submitted."""
    queue = make_queue(BEAT)
    n = 120
    rng = random.Random(7)
    outcome: dict[str, str] = {}
    with WorkerPool(queue, concurrency=2, prefetch_s=0):
        for i in range(n):
            job_id = queue.submit("noop", i)
            time.sleep(rng.uniform(0, 0.003))
            try:
                queue.cancel(job_id)
                outcome[job_id] = "cancelled"
            except JobFinishedError:
                outcome[job_id] = "completed"
        queue.wait_until_drained(timeout_s=30)
    assert {i: queue.status(i).status.value for i in outcome} == outcome
    totals = _totals(queue)
    assert totals.get("completed", 0) + totals.get("cancelled", 0) == n
    assert totals.get("cancelled", 0) == sum(v == "cancelled" for v in outcome.values())


def test_cancel_of_a_finished_job_maps_to_409_in_the_http_error_table() -> None:
    """JobFinishedError is an InvalidStateError, so the API's one table answers it 409."""
    from jobsim.api.errors import status_of

    assert status_of(JobFinishedError("done", job_id="j", status="completed")) == 409


def test_a_job_parked_by_its_tasks_rate_limit_is_cancelled_at_once(make_queue) -> None:
    """A queued job held back by a rate limit (parked) is taken out of the parked set too: it
    ends cancelled and never leases."""
    from jobsim.limits import RateLimit

    queue = make_queue(QueueConfig(rate_limits={"noop": RateLimit(per_s=1000, burst=1)}))
    ids = [queue.submit("noop", i) for i in range(3)]
    (first,) = queue.leases.exchange("w", 3).jobs  # one token: the other two are parked
    parked = [i for i in ids if i != first.id]
    assert queue.cancel(parked[0])
    assert queue.status(parked[0]).status == JobStatus.CANCELLED
    leased: list[str] = []
    wait_until(lambda: leased.extend(j.id for j in queue.leases.exchange("w", 3).jobs) or (
        parked[1] in leased))  # fmt: skip
    assert parked[0] not in leased
    assert queue.stats().queued == 0
