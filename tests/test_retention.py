"""Bounded memory by default: completed records are swept by count and by age from the
workers' housekeeping, busy or idle, and registry entries of gone workers expire. Each
test runs on fakeredis and on a real redis-server."""

from __future__ import annotations

import time

import pytest

from jobsim import JobQueue, JobRequest, QueueConfig, Retention, WorkerPool
from jobsim.leases import REGISTRY_TTL_S
from jobsim.scripts import Ack
from tests.support.waiting import wait_until


def _job_keys(queue: JobQueue) -> int:
    pattern = queue.keys.job_prefix.replace("{", "\\{").replace("}", "\\}") + "*"
    return sum(1 for _ in queue.client.scan_iter(match=pattern, count=1000))


@pytest.mark.slow
def test_default_configuration_keeps_memory_bounded_over_50000_jobs(make_queue, backend) -> None:
    """50,000 no-op jobs through the defaults leave exactly the newest 10,000 completed
    records (the default retention) and nothing else per job. fakeredis runs in-process at
    a tenth of the speed, so there the same sweep is shown at a tenth of the scale."""
    default = Retention()
    assert default == Retention(max_completed=10_000, max_age_s=86_400.0)
    if backend == "server":
        queue, n, keep = make_queue(), 50_000, 10_000
    else:
        queue, n, keep = (
            make_queue(QueueConfig(retention=Retention(max_completed=1_000))),
            5_000,
            1_000,
        )
    base = int(queue.client.info("memory")["used_memory"]) if backend == "server" else 0
    with WorkerPool(queue, concurrency=4):
        for _ in range(n // 5_000):
            queue.submit_many([JobRequest("noop")] * 5_000)
        queue.wait_until_drained(timeout_s=300)
        wait_until(lambda: queue.stats().completed == keep)
    stats = queue.stats()
    assert stats.totals["completed"] == n and stats.completed == keep
    assert _job_keys(queue) == keep
    if backend == "server":
        grown = int(queue.client.info("memory")["used_memory"]) - base
        print(f"redis memory after {n} jobs: +{grown / 1e6:.1f} MB for {keep} kept records")
        assert grown < keep * 2_000  # ~0.7 kB a record; 40,000 leaked records would be >28 MB


def test_old_records_are_swept_even_when_no_job_completes(make_queue) -> None:
    """Age-based retention runs from every worker round trip, so records older than the
    limit go while the queue sits idle after a drain."""
    queue = make_queue(QueueConfig(retention=Retention(max_completed=None, max_age_s=0.5)))
    queue.submit_many([JobRequest("noop")] * 50)
    leased = queue.leases.exchange("w", 50).jobs
    queue.leases.complete([Ack(j.id, j.token) for j in leased])
    assert queue.stats().completed == 50
    with WorkerPool(queue, concurrency=1):  # idle: nothing to run, only housekeeping
        wait_until(lambda: queue.stats().completed == 0, timeout_s=10)
    assert _job_keys(queue) == 0


def test_registry_entries_of_gone_workers_expire(make_queue) -> None:
    """A pool killed without deregistering leaves an entry; once it has been silent for
    longer than REGISTRY_TTL_S, the next heartbeat of any worker drops it."""
    queue = make_queue()
    queue.leases.heartbeat("ghost", [], '{"host":"h","pid":1,"mode":"thread",'
                           '"started_at":0,"heartbeat_s":1,"running":[]}')  # fmt: skip
    assert [w.id for w in queue.workers()] == ["ghost"]
    silent_since = (time.time() - REGISTRY_TTL_S - 60) * 1e6
    queue.client.zadd(queue.keys.workers_seen, {"ghost": silent_since})  # 11 minutes ago
    with WorkerPool(queue, concurrency=1) as pool:
        wait_until(lambda: [w.id for w in queue.workers()] == pool.worker_ids)
    assert queue.client.zscore(queue.keys.workers_seen, "ghost") is None
