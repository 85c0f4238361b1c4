"""Workers keep their guarantees across a Redis restart (AOF fsync always), on a private
redis-server each test restarts itself."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from jobsim import JobQueue, JobRequest, Lease, QueueConfig, WorkerPool, connect
from jobsim.localredis import LocalRedis, redis_server_binary
from tests.conftest import REQUIRE_REDIS
from tests.support.waiting import wait_until


@pytest.fixture
def aof_server() -> Iterator[LocalRedis]:
    if redis_server_binary() is None:
        if REQUIRE_REDIS:
            pytest.fail("JOBSIM_REQUIRE_REDIS=1 but redis-server is not on PATH")
        pytest.skip("redis-server is not installed")
    with LocalRedis(persistence="always") as server:
        yield server


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_no_job_lost_across_a_redis_kill_and_restart_with_aof_always(aof_server, mode) -> None:
    queue = JobQueue(connect(aof_server.url), "restart", QueueConfig(lease=Lease(duration_s=2)))
    ids = queue.submit_many([JobRequest("sleep", {"seconds": 0.01}, max_retries=5)] * 200)
    with WorkerPool(queue, concurrency=2, mode=mode):
        wait_until(lambda: queue.stats().completed >= 20, timeout_s=30.0)
        aof_server.restart(hard=True)  # SIGKILL: only what was fsynced survives
        wait_until(lambda: queue.stats().active == 0, timeout_s=60)
    stats = queue.stats()
    assert stats.completed == 200 and stats.failed == 0
    assert {j.status for j in queue.get_many(ids)} == {"completed"}


def test_process_supervisor_outlives_redis_being_down(aof_server) -> None:
    """A worker process dies while Redis is down: its supervisor must keep going and
    start a new worker, which serves jobs once Redis is back."""
    queue = JobQueue(connect(aof_server.url), "outage")
    with WorkerPool(queue, concurrency=1, mode="process") as pool:
        wait_until(lambda: len(queue.workers()) == 1)
        aof_server.stop()
        os.kill(pool.worker_pids()[0], signal.SIGKILL)
        time.sleep(0.5)
        aof_server.start()
        job_id = queue.submit("noop")
        wait_until(lambda: queue.status(job_id).status == "completed", timeout_s=30.0)
