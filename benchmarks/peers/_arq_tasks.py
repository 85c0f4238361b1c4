"""Task functions and ``WorkerSettings`` for the arq benchmark worker (see ``arq_peer``).

Run as ``python -m arq benchmarks.peers._arq_tasks.WorkerSettings`` with ``PYTHONPATH`` set to
the project root. The worker reads its configuration from the environment:

* ``BENCH_ARQ_URL``: the Redis URL (default ``redis://localhost:6379``);
* ``BENCH_ARQ_MAX_JOBS``: arq's ``max_jobs``, the worker's concurrency (default 1);
* ``BENCH_ARQ_POLL_DELAY``: arq's ``poll_delay`` in seconds (default arq's own 0.5).
"""

from __future__ import annotations

import os
import time
from typing import Any

from arq import Retry
from arq.connections import RedisSettings


async def marker(ctx: dict[str, Any]) -> None:
    """Start the clock: write the wall time to the Redis key ``bench:t0``."""
    await ctx["redis"].set("bench:t0", repr(time.time()))


async def noop(ctx: dict[str, Any]) -> None:
    """Do nothing."""


async def retry_once(ctx: dict[str, Any]) -> None:
    """Fail the first try with arq's ``Retry`` (no delay); succeed on the second."""
    if ctx["job_try"] == 1:
        raise Retry(defer=0)


class WorkerSettings:
    """Settings the ``arq`` CLI reads; values come from the environment at import time."""

    functions = [marker, noop, retry_once]
    redis_settings = RedisSettings.from_dsn(
        os.environ.get("BENCH_ARQ_URL", "redis://localhost:6379")
    )
    max_jobs = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "1"))
    poll_delay = float(os.environ.get("BENCH_ARQ_POLL_DELAY", "0.5"))
