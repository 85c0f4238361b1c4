"""Kill or pause one busy worker process mid-job (E9, E10), on the real queue.

:func:`interrupt_worker` starts a process pool on a fresh queue, waits until a worker is
running a job, and sends that worker's process ``SIGKILL`` (it dies; the pool's supervisor
gives its lease back at once and starts a new process) or ``SIGSTOP`` for ``pause_s`` and
then ``SIGCONT`` (a frozen process: a long GC pause, a VM migration, a laptop lid). A frozen
worker does not heartbeat, so its lease runs out if the pause outlasts it; another worker
then runs the job again, and the late result of the frozen one is refused (fenced) and
counted as a duplicate. POSIX only.

Example:
    >>> result = interrupt_worker("stop", lease_s=0.3, pause_s=1.0)  # doctest: +SKIP
    >>> result.verdict.valid, result.verdict.duplicates              # doctest: +SKIP
    (True, 1)
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from jobsim.config import Lease, QueueConfig
from jobsim.connection import connect, server_time_s
from jobsim.errors import JobsimError
from jobsim.pool import WorkerPool
from jobsim.queue import JobQueue
from jobsim.requests import JobRequest
from jobsim.sim.checker import Verdict, check
from jobsim.sim.experiments import LOST_LEASE
from jobsim.sim.timing import attempt_frame, job_frame

How = Literal["kill", "stop"]


@dataclass
class InterruptResult:
    """What happened to the jobs when one worker was killed or paused.

    ``in_flight`` lists the jobs the worker was running when the signal came and lost its
    lease of: what a queue that pops jobs without a lease would have lost. Times are wall
    seconds from the submit.
    """

    how: How
    worker: str
    lease_s: float
    pause_s: float
    in_flight: tuple[str, ...]
    signalled_s: float
    jobs: pd.DataFrame
    attempts: pd.DataFrame
    verdict: Verdict


def interrupt_worker(
    how: How,
    *,
    lease_s: float = 0.5,
    pause_s: float = 1.0,
    jobs: int = 8,
    job_s: float = 0.2,
    workers: int = 2,
    url: str | None = None,
    timeout_s: float = 60.0,
) -> InterruptResult:
    """Run ``jobs`` sleep jobs on a process pool and kill or pause one busy worker.

    Args:
        how: ``kill`` (SIGKILL) or ``stop`` (SIGSTOP, then SIGCONT after ``pause_s``).
        lease_s: lease length; heartbeats renew it every third of that.
        pause_s: how long a stopped worker stays frozen (``stop`` only).
        jobs: jobs submitted at once, each sleeping ``job_s``.
        job_s: seconds each job works.
        workers: worker processes.
        url: a Redis URL; default the embedded backend (the workers reach it through its private
            Unix-socket bridge).
        timeout_s: give up waiting for a busy worker, or for the drain, after this long.

    Raises:
        JobsimError: no worker started a job within ``timeout_s``.
    """
    config = QueueConfig(lease=Lease(duration_s=lease_s))
    queue = JobQueue(connect(url), f"interrupt-{uuid.uuid4().hex[:8]}", config)
    ids = [f"job-{i:03d}" for i in range(jobs)]
    t0 = server_time_s(queue.client)
    queue.submit_many(JobRequest("sleep", {"seconds": job_s}, job_id=i) for i in ids)
    with WorkerPool(queue, workers, "process") as pool:
        worker, pid = _busy_worker(pool, queue, timeout_s)
        signalled = time.time() - t0
        if how == "kill":
            os.kill(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGSTOP)
            time.sleep(pause_s)
            os.kill(pid, signal.SIGCONT)
        queue.wait_until_drained(timeout_s=timeout_s)
        if how == "stop":
            time.sleep(job_s + 0.3)  # let the thawed worker send its (late) result
    records = queue.get_many(ids)
    verdict = check(queue, ids)
    queue.delete()
    attempts = attempt_frame(records, t0=t0)
    cut = attempts[(attempts["worker"] == worker) & attempts["outcome"].isin(LOST_LEASE)]
    return InterruptResult(
        how=how,
        worker=worker,
        lease_s=lease_s,
        pause_s=pause_s if how == "stop" else 0.0,
        in_flight=tuple(sorted(cut["job_id"])),
        signalled_s=signalled,
        jobs=job_frame(records, t0=t0),
        attempts=attempts,
        verdict=verdict,
    )


def _busy_worker(pool: WorkerPool, queue: JobQueue, timeout_s: float) -> tuple[str, int]:
    """The id and pid of a worker process running a job right now (its supervisor's view:
    a job only leased, not yet started, would go back to the queue uncounted)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = {info.id: info.pid for info in queue.workers() if info.mode == "process"}
        for worker in pool.busy_worker_ids():
            if worker in pids:
                return worker, pids[worker]
        time.sleep(0.002)
    raise JobsimError(f"no worker process started a job within {timeout_s:g} s")
