"""Task functions and worker settings for the SAQ benchmark worker (see ``saq_peer``).

Run as ``python -m saq benchmarks.peers._saq_tasks.settings`` with ``PYTHONPATH`` set to the
project root. The worker reads its configuration from the environment:

* ``BENCH_SAQ_URL``: the Redis URL (default ``redis://localhost:6379``);
* ``BENCH_SAQ_CONCURRENCY``: SAQ's ``concurrency`` for the one worker process (default 1).
"""

from __future__ import annotations

import os
import time
from typing import Any

from saq import Queue


async def marker(ctx: dict[str, Any]) -> None:
    """Start the clock: write the wall time to the Redis key ``bench:t0``."""
    await ctx["worker"].queue.redis.set("bench:t0", repr(time.time()))


async def noop(ctx: dict[str, Any]) -> None:
    """Do nothing."""


async def retry_once(ctx: dict[str, Any]) -> None:
    """Fail the first attempt; succeed on the second (the job is enqueued with retries=2)."""
    if ctx["job"].attempts == 1:
        raise RuntimeError("first attempt fails on purpose")


def settings() -> dict[str, Any]:
    """Worker settings; SAQ calls this because it is callable, so nothing connects on import."""
    url = os.environ.get("BENCH_SAQ_URL", "redis://localhost:6379")
    return {
        "queue": Queue.from_url(url),
        "functions": [marker, noop, retry_once],
        "concurrency": int(os.environ.get("BENCH_SAQ_CONCURRENCY", "1")),
    }
