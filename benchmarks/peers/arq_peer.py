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
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "arq"
POLL_DELAY = 0.005
NOTE = f"arq CLI worker, 1 process, max_jobs = concurrency, poll_delay = {POLL_DELAY} s"

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "benchmarks.peers._arq_tasks.WorkerSettings"
FUNCTIONS = {"noop": "noop", "retry_once": "retry_once"}


def available() -> bool:
    """True when arq imports."""
    try:
        import arq  # noqa: F401
    except ImportError:
        return False
    return True


async def _pool(url: str) -> Any:
    from arq import create_pool
    from arq.connections import RedisSettings

    return await create_pool(RedisSettings.from_dsn(url))


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op jobs one ``enqueue_job`` call at a time; return jobs/s."""

    async def run() -> float:
        pool = await _pool(url)
        try:
            start = time.perf_counter()
            for _ in range(n):
                await pool.enqueue_job("noop")
            return n / (time.perf_counter() - start)
        finally:
            await pool.aclose()

    return asyncio.run(run())


def _start_worker(url: str, workers: int, log: Any) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(
        BENCH_ARQ_URL=url, BENCH_ARQ_MAX_JOBS=str(workers), BENCH_ARQ_POLL_DELAY=str(POLL_DELAY)
    )
    cmd = [sys.executable, "-m", "arq", SETTINGS]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _drain(url: str, n: int, workers: int, function: str) -> float:
    from arq.constants import default_queue_name

    pool = await _pool(url)
    try:
        await pool.enqueue_job("marker")
        for _ in range(n):
            await pool.enqueue_job(function)
        deadline = time.monotonic() + 120 + n / 50
        with tempfile.TemporaryFile() as log:
            proc = _start_worker(url, workers, log)
            try:
                while await pool.zcard(default_queue_name) > 0:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        tail = log.read().decode(errors="replace")[-2000:]
                        raise RuntimeError(f"arq worker stalled or exited:\n{tail}")
                    await asyncio.sleep(0.005)
                t_done = time.time()
            finally:
                _stop(proc)
        t0 = float(await pool.get("bench:t0"))
        results = await pool.all_job_results()
        tries = 2 if function == "retry_once" else 1
        good = sum(r.success and r.job_try == tries for r in results if r.function == function)
        if good != n:
            raise RuntimeError(f"arq: {good} of {n} jobs succeeded on try {tries}")
        return n / (t_done - t0)
    finally:
        await pool.aclose()


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Marker + n jobs, drained by one arq worker process with max_jobs=workers; jobs/s."""
    return asyncio.run(_drain(url, n, workers, FUNCTIONS[scenario]))
