"""RQ peer: jobs enqueued with ``Queue.enqueue``, run by ``rq worker`` processes.

``drain`` measures ``rq.worker.SimpleWorker`` (the job runs inside the worker process);
``drain_forking`` measures the default ``rq.Worker``, which forks a work horse per job.
Concurrency is ``workers`` separate worker processes on one queue. Completion is read from
the queue's FinishedJobRegistry; retries use ``Retry(max=1)`` (interval 0: requeued at once).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "RQ"
NOTE = (
    "rq worker --worker-class rq.worker.SimpleWorker (drain) or the default forking "
    "rq.Worker (drain_forking), one process per worker, --quiet"
)

QUEUE = "bench"
ROOT = Path(__file__).resolve().parents[2]
TASKS = "benchmarks.peers._rq_tasks"
POLL = 0.005  # seconds between polls of the registry


def available() -> bool:
    """True when rq imports."""
    try:
        import rq  # noqa: F401
    except ImportError:
        return False
    return True


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op jobs, one ``Queue.enqueue`` call each; return jobs/s."""
    import redis
    from rq import Queue

    queue = Queue(QUEUE, connection=redis.Redis.from_url(url))
    start = time.perf_counter()
    for _ in range(n):
        queue.enqueue(f"{TASKS}.noop")
    return n / (time.perf_counter() - start)


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Drain n jobs with ``workers`` SimpleWorker processes; return jobs/s."""
    return _drain(url, n, workers, scenario, "rq.worker.SimpleWorker")


def drain_forking(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Drain n jobs with ``workers`` default (forking) Worker processes; return jobs/s."""
    return _drain(url, n, workers, scenario, "rq.Worker")


def _drain(url: str, n: int, workers: int, scenario: str, worker_class: str) -> float | None:
    import redis
    from rq import Queue, Retry

    from benchmarks.peers._rq_tasks import URL_ENV

    if scenario not in ("noop", "retry_once"):
        return None
    conn = redis.Redis.from_url(url)
    queue = Queue(QUEUE, connection=conn)
    queue.enqueue(f"{TASKS}.marker")
    func, retry = (f"{TASKS}.noop", None) if scenario == "noop" else (f"{TASKS}.fail_once", 1)
    for start in range(0, n, 1000):
        batch = [
            Queue.prepare_data(func, retry=Retry(max=retry) if retry else None)
            for _ in range(min(1000, n - start))
        ]
        with conn.pipeline() as pipe:
            queue.enqueue_many(batch, pipeline=pipe)
            pipe.execute()
    finished = queue.finished_job_registry
    failed = queue.failed_job_registry
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        URL_ENV: url,
    }
    cmd = [sys.executable, "-m", "rq.cli", "worker", "--url", url, "--quiet"]
    cmd += ["--worker-class", worker_class, QUEUE]
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryFile() as log:
        try:
            for _ in range(workers):
                procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log))
            deadline = time.time() + 60 + n / 10  # forking RQ retries run near 30 jobs/s
            while finished.get_job_count(cleanup=False) < n + 1:
                if failed.get_job_count(cleanup=False) or any(p.poll() is not None for p in procs):
                    log.seek(0)
                    raise RuntimeError(
                        "rq jobs failed: " + log.read()[-2000:].decode(errors="replace")
                    )
                if time.time() > deadline:
                    raise TimeoutError(f"rq did not finish {n} jobs in time")
                time.sleep(POLL)
            t_done = time.time()
        finally:
            _stop(procs)
    t0 = conn.get("bench:t0")
    if t0 is None:
        raise RuntimeError("the marker job did not write bench:t0")
    return n / (t_done - float(t0))


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate every worker process; kill those still alive after 5 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
