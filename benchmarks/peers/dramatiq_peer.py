"""Dramatiq peer: messages sent with ``Actor.send`` on the Redis broker, run by ``dramatiq``.

Concurrency is one worker process with ``workers`` threads. Completion is read from the
broker's own state: Dramatiq keeps every enqueued message in a hash (``<queue>.msgs``, and
``<queue>.DQ.msgs`` for the delay queue) until it is acked, so the jobs are finished when
both hashes are empty. That costs no round trip per job beyond Dramatiq's own.
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

NAME = "Dramatiq"
NOTE = (
    "dramatiq --processes 1 --threads N (Redis broker); done = its message hashes empty; "
    "retry_once: max_retries=1, min_backoff=0 (via the delay queue, eta = now)"
)

ROOT = Path(__file__).resolve().parents[2]
TASKS = "benchmarks.peers._dramatiq_tasks"
POLL = 0.005  # seconds between polls of the broker's hashes


def available() -> bool:
    """True when dramatiq (with its Redis broker) imports."""
    try:
        import dramatiq.brokers.redis  # noqa: F401
    except ImportError:
        return False
    return True


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op messages, one ``Actor.send`` call each; return jobs/s."""
    from benchmarks.peers._dramatiq_tasks import connect

    broker, actors = connect(url)
    try:
        broker.client.ping()
        noop = actors["noop"]
        start = time.perf_counter()
        for _ in range(n):
            noop.send()
        return n / (time.perf_counter() - start)
    finally:
        broker.client.connection_pool.disconnect()


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Drain n jobs with one ``dramatiq`` process of ``workers`` threads; return jobs/s."""
    from benchmarks.peers._dramatiq_tasks import QUEUE, URL_ENV, connect

    if scenario not in ("noop", "retry_once"):
        return None
    broker, actors = connect(url)
    try:
        actors["marker"].send()
        job = actors["noop" if scenario == "noop" else "fail_once"]
        for _ in range(n):
            job.send()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            URL_ENV: url,
        }
        cmd = [sys.executable, "-m", "dramatiq", TASKS, "--processes", "1"]
        cmd += ["--threads", str(workers)]
        keys = [f"dramatiq:{QUEUE}.msgs", f"dramatiq:{QUEUE}.DQ.msgs", f"dramatiq:{QUEUE}.XQ.msgs"]
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
            )
            try:
                t_done = _wait(broker.client, keys, n, proc, log)
            finally:
                _stop(proc)
        t0 = broker.client.get("bench:t0")
    finally:
        broker.client.connection_pool.disconnect()
    if t0 is None:
        raise RuntimeError("the marker job did not write bench:t0")
    return n / (t_done - float(t0))


def _wait(client, keys: list[str], n: int, proc: subprocess.Popen[bytes], log: IO[bytes]) -> float:
    """Poll until the queue and delay-queue hashes are empty; return that time.time()."""
    deadline = time.time() + 60 + n / 50
    while True:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hlen(key)
            pipe.exists("bench:t0")
            queued, delayed, dead, started = pipe.execute()
        if started and queued == 0 and delayed == 0:
            return time.time()
        if dead or proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(
                "dramatiq jobs failed: " + log.read()[-2000:].decode(errors="replace")
            )
        if time.time() > deadline:
            raise TimeoutError(f"dramatiq did not finish {n} jobs in time")
        time.sleep(POLL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the worker, then kill its whole process group (it forks the worker)."""
    try:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
