"""Celery peer: tasks sent with ``Task.delay`` on the Redis broker, run by ``celery worker``.

Concurrency is one worker with a prefork pool of ``workers`` child processes. There is no
result backend; instead ``task_acks_late`` keeps each message in kombu's ``unacked`` hash
until its task is done, so the jobs are finished when the queue list and that hash are both
empty. That costs no round trip per job beyond Celery's own (it acks every message either
way). kombu moves a message from the list (BRPOP) to the hash in a second round trip, so an
empty reading is only accepted when the next poll, 5 ms later, is empty too; the first
empty reading's time counts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

NAME = "Celery"
NOTE = (
    "celery worker --pool prefork -c N -O fair --without-gossip/mingle/heartbeat, no result "
    "backend, acks_late (done = queue and unacked hash empty); retry_once: countdown 0"
)

ROOT = Path(__file__).resolve().parents[2]
TASKS = "benchmarks.peers._celery_tasks"
POLL = 0.005  # seconds between polls of the queue and the unacked hash


def available() -> bool:
    """True when celery (with the redis client kombu needs) imports."""
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        return False
    return True


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op tasks, one ``Task.delay`` call each; return jobs/s."""
    from benchmarks.peers._celery_tasks import make_app

    app = make_app(url)
    try:
        noop = app.tasks["bench.noop"]
        start = time.perf_counter()
        for _ in range(n):
            noop.delay()
        return n / (time.perf_counter() - start)
    finally:
        app.close()


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Drain n jobs with one prefork ``celery worker`` of ``workers`` children; return jobs/s."""
    import redis

    from benchmarks.peers._celery_tasks import QUEUE, URL_ENV, make_app

    if scenario not in ("noop", "retry_once"):
        return None
    app = make_app(url)
    try:
        app.tasks["bench.marker"].delay()
        job = app.tasks["bench.noop" if scenario == "noop" else "bench.fail_once"]
        for _ in range(n):
            job.delay()
    finally:
        app.close()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        URL_ENV: url,
    }
    cmd = [sys.executable, "-m", "celery", "-A", TASKS, "--quiet", "worker", "--pool", "prefork"]
    cmd += ["-c", str(workers), "-O", "fair", "--loglevel", "WARNING"]
    cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with redis.Redis.from_url(url) as client, tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            t_done = _wait(client, QUEUE, n, proc, log)
        finally:
            _stop(proc)
        t0 = client.get("bench:t0")
    if t0 is None:
        raise RuntimeError("the marker job did not write bench:t0")
    return n / (t_done - float(t0))


def _wait(client, queue: str, n: int, proc: subprocess.Popen[bytes], log: IO[bytes]) -> float:
    """Poll until the queue list and the unacked hash read empty twice in a row; return the
    time.time() of the first of those two readings."""
    deadline = time.time() + 60 + n / 50
    first_empty: float | None = None
    while True:
        with client.pipeline(transaction=False) as pipe:
            queued, unacked, started = pipe.llen(queue).hlen("unacked").exists("bench:t0").execute()
        now = time.time()
        if started and queued == 0 and unacked == 0:
            if first_empty is not None:
                return first_empty
            first_empty = now
        else:
            first_empty = None
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(
                "celery worker exited: " + log.read()[-2000:].decode(errors="replace")
            )
        if now > deadline:
            raise TimeoutError(f"celery did not finish {n} jobs in time")
        time.sleep(POLL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the worker, then kill its whole process group (the prefork children too)."""
    try:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
