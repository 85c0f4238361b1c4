"""Huey peer: tasks enqueued by calling a ``RedisHuey`` task, run by ``huey_consumer``.

One consumer process with ``-w workers -k thread``. Completion is read from Huey's result
store (``result_store_size``): every task returns True, and intermediate errors are not
stored, so a task has an entry exactly when it has succeeded. ``retry_once`` uses
``@huey.task(retries=1, retry_delay=0)``: the failed task is re-enqueued at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "Huey"
NOTE = "huey_consumer -w N -k thread (one process, N worker threads), RedisHuey, -q"

ROOT = Path(__file__).resolve().parents[2]
TASKS = "benchmarks.peers._huey_tasks"
POLL = 0.005  # seconds between polls of the result store


def available() -> bool:
    """True when huey imports."""
    try:
        import huey  # noqa: F401
    except ImportError:
        return False
    return True


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op tasks, one task call each; return jobs/s."""
    from benchmarks.peers import _huey_tasks as tasks

    tasks.connect(url)
    start = time.perf_counter()
    for _ in range(n):
        tasks.noop()
    return n / (time.perf_counter() - start)


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
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        tasks.URL_ENV: url,
    }
    cmd = [sys.executable, "-m", "huey.bin.huey_consumer", f"{TASKS}.huey"]
    cmd += ["-w", str(workers), "-k", "thread", "-q"]
    proc: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
            deadline = time.time() + 60 + n / 20
            while huey.result_count() < n + 1:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(
                        "huey_consumer exited: " + log.read()[-2000:].decode(errors="replace")
                    )
                if time.time() > deadline:
                    raise TimeoutError(f"huey did not finish {n} tasks in time")
                time.sleep(POLL)
            t_done = time.time()
        finally:
            if proc is not None:
                _stop(proc)
    t0 = huey.storage.conn.get("bench:t0")
    if t0 is None:
        raise RuntimeError("the marker task did not write bench:t0")
    return n / (t_done - float(t0))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the consumer; kill it if it is still alive after 5 s."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
