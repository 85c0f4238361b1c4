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
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "SAQ"
NOTE = "saq CLI worker, 1 process, concurrency = workers (BLMOVE per slot), default settings"

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "benchmarks.peers._saq_tasks.settings"
JOBS = {"noop": ("noop", {}), "retry_once": ("retry_once", {"retries": 2})}


def available() -> bool:
    """True when SAQ imports."""
    try:
        import saq  # noqa: F401
    except ImportError:
        return False
    return True


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
            start = time.perf_counter()
            for _ in range(n):
                await queue.enqueue("noop")
            return n / (time.perf_counter() - start)
        finally:
            await queue.disconnect()

    return asyncio.run(run())


def _start_worker(url: str, workers: int, log: Any) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(BENCH_SAQ_URL=url, BENCH_SAQ_CONCURRENCY=str(workers))
    cmd = [sys.executable, "-m", "saq", SETTINGS]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _drain(url: str, n: int, workers: int, scenario: str) -> float:
    from saq.job import Status

    function, options = JOBS[scenario]
    queue = await _queue(url)
    try:
        await queue.enqueue("marker")
        keys = [(await queue.enqueue(function, **options)).key for _ in range(n)]
        deadline = time.monotonic() + 120 + n / 50
        with tempfile.TemporaryFile() as log:
            proc = _start_worker(url, workers, log)
            try:
                while await queue.count("incomplete") > 0:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        tail = log.read().decode(errors="replace")[-2000:]
                        raise RuntimeError(f"saq worker stalled or exited:\n{tail}")
                    await asyncio.sleep(0.005)
                t_done = time.time()
            finally:
                _stop(proc)
        t0 = float(await queue.redis.get("bench:t0"))
        tries = options.get("retries", 1)
        jobs = await queue.jobs(keys)
        good = sum(
            j is not None and j.status == Status.COMPLETE and j.attempts == tries for j in jobs
        )
        if good != n:
            raise RuntimeError(f"saq: {good} of {n} jobs completed on attempt {tries}")
        return n / (t_done - t0)
    finally:
        await queue.disconnect()


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Marker + n jobs, drained by one saq worker process with concurrency=workers; jobs/s."""
    return asyncio.run(_drain(url, n, workers, scenario))
