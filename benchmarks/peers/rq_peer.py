"""RQ peer: jobs enqueued with ``Queue.enqueue``, run by ``rq worker`` processes.

``drain`` measures ``rq.worker.SimpleWorker`` (the job runs inside the worker process);
``drain_forking`` measures the default ``rq.Worker``, which forks a work horse per job.
Concurrency is ``workers`` separate worker processes on one queue. Completion is read from
the queue's FinishedJobRegistry; retries use ``Retry(max=1)`` (interval 0: requeued at once).
"""

from __future__ import annotations

import sys

from benchmarks.peers import _common as common

NAME = "RQ"
NOTE = (
    "rq worker --worker-class rq.worker.SimpleWorker (drain) or the default forking "
    "rq.Worker (drain_forking), one process per worker, --quiet"
)

QUEUE = "bench"
TASKS = "benchmarks.peers._rq_tasks"


def available() -> bool:
    """True when rq imports."""
    return common.library_installed("rq")


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op jobs, one ``Queue.enqueue`` call each; return jobs/s."""
    import redis
    from rq import Queue

    queue = Queue(QUEUE, connection=redis.Redis.from_url(url))
    return common.calls_per_second(n, queue.enqueue, f"{TASKS}.noop")


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Drain n jobs with ``workers`` SimpleWorker processes; return jobs/s."""
    return _drain(url, n, workers, scenario, "rq.worker.SimpleWorker")


def drain_forking(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Drain n jobs with ``workers`` default (forking) Worker processes; return jobs/s."""
    return _drain(url, n, workers, scenario, "rq.Worker")


def _drain(url: str, n: int, workers: int, scenario: str, worker_class: str) -> float | None:
    import redis
    from rq import Queue, Retry

    from benchmarks.peers._rq_tasks import URL_ENV

    if scenario not in ("noop", "retry_once"):
        return None
    conn = redis.Redis.from_url(url)
    queue = Queue(QUEUE, connection=conn)
    queue.enqueue(f"{TASKS}.marker")
    func, retry = (f"{TASKS}.noop", None) if scenario == "noop" else (f"{TASKS}.fail_once", 1)
    for start in range(0, n, 1000):
        batch = [
            Queue.prepare_data(func, retry=Retry(max=retry) if retry else None)
            for _ in range(min(1000, n - start))
        ]
        with conn.pipeline() as pipe:
            queue.enqueue_many(batch, pipeline=pipe)
            pipe.execute()
    finished = queue.finished_job_registry
    failed = queue.failed_job_registry
    cmd = [sys.executable, "-m", "rq.cli", "worker", "--url", url, "--quiet"]
    cmd += ["--worker-class", worker_class, QUEUE]
    env = common.worker_env(URL_ENV, url)
    with common.running_workers(cmd, env, count=workers, name="rq worker") as check:

        def all_finished() -> bool:
            """All n + 1 jobs are in the FinishedJobRegistry (a failed job raises)."""
            if finished.get_job_count(cleanup=False) >= n + 1:
                return True
            if failed.get_job_count(cleanup=False):
                check("rq jobs failed")
            return False

        timeout_s = 60 + n / 10  # forking RQ retries run near 30 jobs/s
        t_done = common.poll_until(all_finished, timeout_s, check=check)
    return common.rate(n, conn.get("bench:t0"), t_done)
