"""SAQ 0.26: enqueue through ``Queue.enqueue``; drain with the ``saq`` CLI worker.

The worker runs as one separate process (``python -m saq ...settings``, the CLI's entry point)
whose settings set ``concurrency = workers``: that many coroutines each block on ``BLMOVE``
from the queued list. ``retry_once`` jobs are enqueued with ``retries=2`` (SAQ counts
attempts) and the default ``retry_delay`` of 0, so a failed job is pushed straight back onto
the queued list. A job stays in SAQ's ``incomplete`` sorted set until it finishes, so the queue
is drained when ``Queue.count("incomplete")`` reaches 0.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from benchmarks.peers import _common as common

NAME = "SAQ"
NOTE = "saq CLI worker, 1 process, concurrency = workers (BLMOVE per slot), default settings"

SETTINGS = "benchmarks.peers._saq_tasks.settings"
JOBS = {"noop": ("noop", {}), "retry_once": ("retry_once", {"retries": 2})}


def available() -> bool:
    """True when SAQ imports."""
    return common.library_installed("saq")


async def _queue(url: str) -> Any:
    from saq import Queue

    queue = Queue.from_url(url)
    await queue.connect()
    return queue


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op jobs one ``Queue.enqueue`` call at a time; return jobs/s."""

    async def run() -> float:
        queue = await _queue(url)
        try:
            return await common.calls_per_second_async(n, queue.enqueue, "noop")
        finally:
            await queue.disconnect()

    return asyncio.run(run())


async def _drain(url: str, n: int, workers: int, scenario: str) -> float:
    from saq.job import Status

    function, options = JOBS[scenario]
    queue = await _queue(url)
    try:
        await queue.enqueue("marker")
        keys = [(await queue.enqueue(function, **options)).key for _ in range(n)]
        env = common.worker_env("BENCH_SAQ_URL", url, BENCH_SAQ_CONCURRENCY=str(workers))
        cmd = [sys.executable, "-m", "saq", SETTINGS]
        with common.running_workers(cmd, env, name="saq worker") as check:

            async def drained() -> bool:
                return await queue.count("incomplete") == 0

            t_done = await common.poll_until_async(drained, 120 + n / 50, check=check)
        t0 = await queue.redis.get("bench:t0")
        tries = options.get("retries", 1)
        jobs = await queue.jobs(keys)
        good = sum(
            j is not None and j.status == Status.COMPLETE and j.attempts == tries for j in jobs
        )
        if good != n:
            raise RuntimeError(f"saq: {good} of {n} jobs completed on attempt {tries}")
        return common.rate(n, t0, t_done)
    finally:
        await queue.disconnect()


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Marker + n jobs, drained by one saq worker process with concurrency=workers; jobs/s."""
    return asyncio.run(_drain(url, n, workers, scenario))
