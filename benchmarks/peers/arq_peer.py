"""arq 0.28: enqueue through ``ArqRedis.enqueue_job``; drain with the ``arq`` CLI worker.

The worker runs as a separate process (``python -m arq ...WorkerSettings``, the CLI's entry
point) with ``max_jobs = workers``. arq's worker polls its queue (a sorted set) every
``poll_delay`` seconds and starts at most ``max_jobs`` jobs per poll; the default of 0.5 s caps
one worker near 2 jobs/s, so the benchmark sets ``poll_delay`` to ``POLL_DELAY`` (documented
``WorkerSettings`` option). A job stays in the sorted set until it finishes, so the queue is
drained when ``ZCARD`` of it (what arq's own burst mode checks) reaches 0.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from benchmarks.peers import _common as common

NAME = "arq"
POLL_DELAY = 0.005
NOTE = f"arq CLI worker, 1 process, max_jobs = concurrency, poll_delay = {POLL_DELAY} s"

SETTINGS = "benchmarks.peers._arq_tasks.WorkerSettings"
FUNCTIONS = {"noop": "noop", "retry_once": "retry_once"}


def available() -> bool:
    """True when arq imports."""
    return common.library_installed("arq")


async def _pool(url: str) -> Any:
    from arq import create_pool
    from arq.connections import RedisSettings

    return await create_pool(RedisSettings.from_dsn(url))


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op jobs one ``enqueue_job`` call at a time; return jobs/s."""

    async def run() -> float:
        pool = await _pool(url)
        try:
            return await common.calls_per_second_async(n, pool.enqueue_job, "noop")
        finally:
            await pool.aclose()

    return asyncio.run(run())


async def _drain(url: str, n: int, workers: int, function: str) -> float:
    from arq.constants import default_queue_name

    pool = await _pool(url)
    try:
        await pool.enqueue_job("marker")
        for _ in range(n):
            await pool.enqueue_job(function)
        env = common.worker_env(
            "BENCH_ARQ_URL",
            url,
            BENCH_ARQ_MAX_JOBS=str(workers),
            BENCH_ARQ_POLL_DELAY=str(POLL_DELAY),
        )
        cmd = [sys.executable, "-m", "arq", SETTINGS]
        with common.running_workers(cmd, env, name="arq worker") as check:

            async def drained() -> bool:
                return await pool.zcard(default_queue_name) == 0

            t_done = await common.poll_until_async(drained, 120 + n / 50, check=check)
        t0 = await pool.get("bench:t0")
        results = await pool.all_job_results()
        tries = 2 if function == "retry_once" else 1
        good = sum(r.success and r.job_try == tries for r in results if r.function == function)
        if good != n:
            raise RuntimeError(f"arq: {good} of {n} jobs succeeded on try {tries}")
        return common.rate(n, t0, t_done)
    finally:
        await pool.aclose()


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Marker + n jobs, drained by one arq worker process with max_jobs=workers; jobs/s."""
    return asyncio.run(_drain(url, n, workers, FUNCTIONS[scenario]))
