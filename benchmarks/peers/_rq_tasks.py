"""Task functions for the RQ peer; imported by ``rq worker`` processes (PYTHONPATH=repo root).

The marker task reads the Redis URL from the environment variable named by ``URL_ENV``.
"""

from __future__ import annotations

import os
import time

import redis
from rq import get_current_job

URL_ENV = "BENCH_REDIS_URL"


def marker() -> None:
    """Record when the workers began: time.time() in the key ``bench:t0``."""
    redis.Redis.from_url(os.environ[URL_ENV]).set("bench:t0", repr(time.time()))


def noop() -> None:
    """Do nothing."""


def fail_once() -> None:
    """Fail on the first attempt (one retry left), succeed on the retry."""
    job = get_current_job()
    if job is not None and job.retries_left:
        raise RuntimeError("first attempt fails by design")
