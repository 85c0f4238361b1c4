"""The chaos test's task: it writes down every execution it starts, in a log of its own.

Each execution START appends one line ``job_id attempt pid worker_id`` to the file named by
the payload's ``log`` (one ``O_APPEND`` write of a short line: atomic, even if the process is
SIGKILLed right after), then works a little and sometimes fails. The draws are seeded by
(payload ``seed``, job id, attempt), so a job does the same thing on the same attempt on any
worker. Worker processes import this module (``jobsim worker --import tests.support.chaos_tasks``).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import jobsim
from jobsim.tasks import JobContext


class ChaosFailure(RuntimeError):
    """A retryable failure the chaos task draws."""


def log_start(path: str, ctx: JobContext) -> None:
    """Append ``job_id attempt pid worker_id`` to ``path`` in one write."""
    line = f"{ctx.job_id} {ctx.attempt} {os.getpid()} {ctx.worker_id}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def run(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    """Log the start, sleep up to ``sleep_s`` (none on a ``fast_share`` of draws), then fail
    with probability ``fail_p``."""
    log_start(payload["log"], ctx)
    rng = random.Random(f"{payload['seed']}:{ctx.job_id}:{ctx.attempt}")
    if rng.random() >= payload.get("fast_share", 0.0):
        time.sleep(rng.uniform(0.0, payload.get("sleep_s", 0.0)))
    if rng.random() < payload.get("fail_p", 0.0):
        raise ChaosFailure(f"drawn failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt, "pid": os.getpid()}


@jobsim.task("chaos_log")
def chaos_log(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    """The chaos task every chaos worker knows."""
    return run(payload, ctx)
