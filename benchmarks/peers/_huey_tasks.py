"""Task functions for the Huey peer; imported by ``huey_consumer`` (PYTHONPATH=repo root).

The consumer process finds the Redis URL in the environment variable named by ``URL_ENV``;
the benchmarking process calls :func:`connect` instead. Intermediate errors are not stored,
so the result store holds one entry per task exactly when that task has succeeded.
"""

from __future__ import annotations

import os
import time

from huey import RedisHuey
from huey.api import Task

URL_ENV = "BENCH_REDIS_URL"

huey = RedisHuey(
    "bench",
    url=os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"),
    store_intermediate_errors=False,
)


def connect(url: str) -> RedisHuey:
    """Point this module's Huey instance at ``url`` (in the benchmarking process)."""
    huey.storage_kwargs["url"] = url
    huey.storage = huey.create_storage()
    return huey


@huey.task()
def marker() -> bool:
    """Record when the consumer began: time.time() in the key ``bench:t0``."""
    huey.storage.conn.set("bench:t0", repr(time.time()))
    return True


@huey.task()
def noop() -> bool:
    """Do nothing; return True so that the result store records completion."""
    return True


@huey.task(retries=1, retry_delay=0, context=True)
def fail_once(task: Task) -> bool:
    """Fail on the first attempt (one retry left), succeed on the retry."""
    if task.retries:
        raise RuntimeError("first attempt fails by design")
    return True
