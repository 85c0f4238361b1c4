"""Pause and resume: a paused queue leases nothing new while DEQUEUE still settles and sweeps;
workers keep their leases and heartbeats; stats show it; resume wakes the idle workers.
Each test runs on fakeredis and on a real redis-server."""

from __future__ import annotations

from jobsim import JobStatus, Lease, QueueConfig, WorkerPool
from jobsim.connection import server_time_s
from jobsim.scripts import Ack
from tests.support.waiting import wait_until

SHORT = QueueConfig(lease=Lease(duration_s=0.6, heartbeat_s=0.1))


def test_a_paused_queue_leases_nothing_but_still_settles_and_sweeps(make_queue) -> None:
    """While paused, DEQUEUE acks what it is sent, promotes due scheduled jobs to the queue and
    gives back expired leases, but hands out no job; after resume it does."""
    queue = make_queue(QueueConfig(lease=Lease(duration_s=0.2)))
    held, expiring = queue.submit("noop", 1), queue.submit("noop", 2)
    jobs = {j.id: j for j in queue.leases.exchange("w", 2).jobs}
    now = server_time_s(queue.client)
    later = queue.submit("noop", 3, run_at=now + 0.1)
    assert queue.pause() is False and queue.paused and queue.stats().paused
    wait_until(lambda: server_time_s(queue.client) > now + 0.3, timeout_s=5)
    exchange = queue.leases.exchange("w", 5, [Ack(held, jobs[held].token)])
    assert exchange.jobs == []
    assert queue.status(held).status == JobStatus.COMPLETED  # settled while paused
    assert queue.status(later).status == JobStatus.QUEUED  # promoted while paused
    assert queue.status(expiring).status == JobStatus.QUEUED  # expired lease given back
    assert queue.resume() is True and not queue.paused
    assert sorted(j.id for j in queue.leases.exchange("w", 5).jobs) == sorted([later, expiring])


def test_pause_and_resume_are_idempotent_and_counted_once(make_queue) -> None:
    """Pausing twice or resuming twice changes nothing the second time (safe to re-send)."""
    queue = make_queue()
    assert queue.pause() is False
    assert queue.pause() is True
    assert queue.resume() is True
    assert queue.resume() is False
    totals = queue.stats().totals
    assert (totals["paused"], totals["resumed"]) == (1, 1)
    assert not queue.stats().paused


def test_a_paused_pool_keeps_its_running_job_and_starts_nothing_until_resumed(make_queue) -> None:
    """A job running when the queue is paused keeps its lease (heartbeats, no expiry) and
    completes; jobs submitted meanwhile wait queued; after resume the idle workers run them."""
    queue = make_queue(SHORT)
    with WorkerPool(queue, concurrency=2, prefetch_s=0):
        running = queue.submit("sleep", {"seconds": 1.0})
        wait_until(lambda: queue.status(running).status == JobStatus.PROCESSING)
        queue.pause()
        waiting = [queue.submit("noop", i) for i in range(3)]
        wait_until(lambda: queue.status(running).status == JobStatus.COMPLETED)
        job = queue.status(running)
        assert (job.attempts, job.redeliveries) == (1, 0)  # lease kept through the pause
        assert queue.stats().queued == 3 and queue.stats().paused
        assert all(queue.status(i).attempts == 0 for i in waiting)
        queue.resume()
        queue.wait_until_drained(timeout_s=20)
    assert all(queue.status(i).status == JobStatus.COMPLETED for i in waiting)
    assert queue.stats().totals.get("expired", 0) == 0
