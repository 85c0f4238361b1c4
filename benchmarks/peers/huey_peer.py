"""Huey peer: tasks enqueued by calling a ``RedisHuey`` task, run by ``huey_consumer``.

One consumer process with ``-w workers -k thread``. Completion is read from Huey's result
store (``result_store_size``): every task returns True, and intermediate errors are not
stored, so a task has an entry exactly when it has succeeded. ``retry_once`` uses
``@huey.task(retries=1, retry_delay=0)``: the failed task is re-enqueued at once.
"""

from __future__ import annotations

import sys

from benchmarks.peers import _common as common

NAME = "Huey"
NOTE = "huey_consumer -w N -k thread (one process, N worker threads), RedisHuey, -q"

TASKS = "benchmarks.peers._huey_tasks"


def available() -> bool:
    """True when huey imports."""
    return common.library_installed("huey")


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op tasks, one task call each; return jobs/s."""
    from benchmarks.peers import _huey_tasks as tasks

    tasks.connect(url)
    return common.calls_per_second(n, tasks.noop)


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Drain n tasks with one consumer running ``workers`` threads; return jobs/s."""
    from benchmarks.peers import _huey_tasks as tasks

    if scenario not in ("noop", "retry_once"):
        return None
    huey = tasks.connect(url)
    tasks.marker()
    task = tasks.noop if scenario == "noop" else tasks.fail_once
    for _ in range(n):
        task()
    cmd = [sys.executable, "-m", "huey.bin.huey_consumer", f"{TASKS}.huey"]
    cmd += ["-w", str(workers), "-k", "thread", "-q"]
    env = common.worker_env(tasks.URL_ENV, url)
    with common.running_workers(cmd, env, name="huey_consumer") as check:
        t_done = common.poll_until(lambda: huey.result_count() >= n + 1, 60 + n / 20, check=check)
    return common.rate(n, huey.storage.conn.get("bench:t0"), t_done)
