"""Delayed and scheduled jobs: ``scheduled`` until due (Redis time), then queued at their
priority by the next DEQUEUE; listable, counted, woken on time, and bad input refused with
nothing written. Each test runs on fakeredis and on a real redis-server."""

from __future__ import annotations

import math

import pytest

from jobsim import JobQueue, JobRequest, JobStatus, WorkerPool
from jobsim.connection import server_time_s
from jobsim.errors import InvalidInputError
from tests.support.waiting import wait_until


def _lease(queue: JobQueue, count: int = 10) -> list[str]:
    return [job.id for job in queue.leases.exchange("w", count).jobs]


def test_a_delayed_job_is_scheduled_until_due_then_queued(make_queue) -> None:
    """delay_s keeps the job `scheduled` (not leased) until it is due, then DEQUEUE hands it out."""
    queue = make_queue()
    job_id = queue.submit("noop", {"x": 1}, delay_s=0.3)
    job = queue.status(job_id)
    assert job.status == JobStatus.SCHEDULED
    assert job.scheduled_for is not None
    assert job.scheduled_for - job.submitted_at == pytest.approx(0.3, abs=1e-6)
    assert queue.job_ids("scheduled") == [job_id] and queue.job_ids("queued") == []
    stats = queue.stats()
    assert (stats.scheduled, stats.queued, stats.active) == (1, 0, 1)
    assert _lease(queue) == []  # not due: nothing leased
    wait_until(lambda: server_time_s(queue.client) >= job.scheduled_for, timeout_s=5)
    assert _lease(queue) == [job_id]
    assert queue.stats().scheduled == 0


def test_run_at_uses_redis_time_and_a_past_run_at_queues_at_once(make_queue) -> None:
    """run_at is epoch seconds of Redis TIME; one already past queues the job straight away."""
    queue = make_queue()
    now = server_time_s(queue.client)
    later = queue.submit("noop", run_at=now + 60)
    past = queue.submit("noop", run_at=now - 60)
    zero = queue.submit("noop", delay_s=0)
    assert queue.status(later).status == JobStatus.SCHEDULED
    assert queue.status(later).scheduled_for == pytest.approx(now + 60, abs=1e-6)
    assert queue.status(past).status == queue.status(zero).status == JobStatus.QUEUED
    assert sorted(_lease(queue)) == sorted([past, zero])


def test_due_scheduled_jobs_are_queued_at_their_priority(make_queue) -> None:
    """Once due, scheduled jobs join the queue in priority order, FIFO within a priority."""
    queue = make_queue()
    now = server_time_s(queue.client)
    low = queue.submit("noop", priority=1, run_at=now + 0.2)
    high = queue.submit("noop", priority=8, run_at=now + 0.2)
    waiting = queue.submit("noop", priority=5)
    wait_until(lambda: server_time_s(queue.client) >= now + 0.2, timeout_s=5)
    assert _lease(queue) == [high, waiting, low]


def test_submit_many_takes_a_delay_per_job(make_queue) -> None:
    """Each JobRequest carries its own delay_s / run_at."""
    queue = make_queue()
    ids = queue.submit_many(
        [
            JobRequest("noop", 1),
            JobRequest("noop", 2, delay_s=60),
            JobRequest("noop", 3, run_at=1.0),
        ]
    )
    assert [queue.status(i).status for i in ids] == ["queued", "scheduled", "queued"]
    assert queue.job_ids(JobStatus.SCHEDULED) == [ids[1]]


def test_the_next_due_scheduled_job_bounds_an_idle_workers_block(make_queue) -> None:
    """DEQUEUE's "until the next due" counts scheduled jobs, so an idle worker wakes on time."""
    queue = make_queue()
    queue.submit("noop", delay_s=0.5)
    exchange = queue.leases.exchange("w", 1)
    assert exchange.jobs == []
    assert exchange.next_due_s is not None and 0.3 < exchange.next_due_s <= 0.5


def test_a_pool_runs_a_delayed_job_after_its_delay_not_before(make_queue) -> None:
    """Idle workers blocked on the wake list pick a delayed job up once it is due: it starts no
    sooner than its due time (both read from Redis TIME)."""
    queue = make_queue()
    with WorkerPool(queue, concurrency=2):
        job_id = queue.submit("noop", delay_s=0.4)
        queue.wait_until_drained(timeout_s=20)
    job = queue.status(job_id)
    assert job.status == JobStatus.COMPLETED and job.scheduled_for is not None
    started = job.attempt_log[0].started_at
    assert started is not None and started >= job.scheduled_for


def test_a_replayed_delayed_submit_is_a_no_op(make_queue) -> None:
    """Submitting the same id, task and payload again (a retry) keeps the first due time."""
    queue = make_queue()
    queue.submit("noop", 1, job_id="d1", delay_s=30)
    first = queue.status("d1").scheduled_for
    queue.submit("noop", 1, job_id="d1", delay_s=60)
    assert queue.status("d1").scheduled_for == first
    assert queue.stats().totals["submitted"] == 1


BAD: list[tuple[dict[str, object], str]] = [
    ({"delay_s": -1}, "delay_s"),
    ({"delay_s": math.nan}, "delay_s"),
    ({"delay_s": math.inf}, "delay_s"),
    ({"delay_s": True}, "delay_s"),
    ({"delay_s": "30"}, "delay_s"),
    ({"delay_s": 1e12}, "delay_s"),
    ({"run_at": -5.0}, "run_at"),
    ({"run_at": math.inf}, "run_at"),
    ({"run_at": 1e300}, "run_at"),
    ({"delay_s": 1, "run_at": 4_102_444_800.0}, "run_at"),  # both, run_at in 2100
]


@pytest.mark.parametrize("kwargs, field", BAD, ids=[str(k) for k, _ in BAD])
def test_a_bad_delay_is_refused_naming_its_field_and_writes_nothing(
    make_queue, client, kwargs: dict[str, object], field: str
) -> None:
    """Negative, non-finite, non-numeric, out-of-range, or both delay_s and run_at: an
    InvalidInputError naming the field, for submit and for submit_many, and Redis untouched."""
    queue = make_queue()
    with pytest.raises(InvalidInputError) as info:
        queue.submit("noop", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    with pytest.raises(InvalidInputError):
        queue.submit_many([JobRequest("noop"), JobRequest("noop", **kwargs)])  # type: ignore[arg-type]
    assert client.keys("*") == []
