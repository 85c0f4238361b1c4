"""A shared outage (E6, E7): every job calls one dependency, which is down for its first
``outage_s`` seconds; each failed call is retried with the queue's :class:`RetryPolicy`.

:func:`run_outage` runs this on the real queue: the jobs are submitted at once (every client
hit the outage together), the dependency is a task in a private registry that fails while
the outage lasts, and the result is every attempt's start time. :func:`twin_outage` runs the
same on the virtual backend (``FaultPlan(outages=...)``, instant service, model seconds),
exact per seed, to check against :func:`jobsim.theory.outage_attempts`. :func:`outage_schedule` is
the same story with no queue at all (instant service, unlimited workers): when each attempt
would start under the policy alone. Without jitter the retries of all jobs come due at the
same moments, in waves; full jitter spreads each wave over its backoff window.

Example:
    >>> from jobsim.retry import RetryPolicy
    >>> plan = outage_schedule(RetryPolicy(kind="exponential", base_s=0.1, cap_s=1.0),
    ...                        jobs=3, outage_s=0.25, max_retries=5)
    >>> sorted(set(plan["started"].round(3)))
    [0.0, 0.1, 0.3]
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from jobsim.config import QueueConfig
from jobsim.connection import connect, server_time_s
from jobsim.pool import WorkerPool
from jobsim.queue import JobQueue
from jobsim.requests import JobRequest
from jobsim.retry import RetryPolicy
from jobsim.sim.checker import Verdict, check
from jobsim.sim.faults import FaultPlan, Outage
from jobsim.sim.runner import run
from jobsim.sim.setup import Setup
from jobsim.sim.timing import attempt_frame
from jobsim.sim.workload import AllAtOnce, Fixed, Workload
from jobsim.tasks import JobContext, SimulatedFailure, TaskRegistry


@dataclass
class OutageResult:
    """What :func:`run_outage` measured. Times are wall seconds from the submit."""

    policy: RetryPolicy
    jobs: int
    outage_s: float
    attempts: pd.DataFrame  # job_id, number, started, outcome, ...
    verdict: Verdict

    @property
    def attempts_per_job(self) -> float:
        """Attempts made per job, the load the dependency saw per request."""
        return len(self.attempts) / self.jobs

    @property
    def finished_s(self) -> float:
        """When the last attempt ended."""
        return float(self.attempts["ended"].max())

    def retry_peak(self, bucket_s: float) -> int:
        """The most retries (attempts after the first) that started in one bucket."""
        return peak(self.attempts.loc[self.attempts["number"] > 1, "started"], bucket_s)


def peak(times: pd.Series | np.ndarray, bucket_s: float) -> int:
    """The largest number of ``times`` falling in one bucket of ``bucket_s`` seconds."""
    values = np.asarray(times, dtype=float)
    if values.size == 0:
        return 0
    return int(np.bincount(np.floor(values / bucket_s).astype(int)).max())


def bucket_counts(times: pd.Series | np.ndarray, bucket_s: float, horizon_s: float) -> pd.DataFrame:
    """How many of ``times`` fall in each bucket up to ``horizon_s``: columns ``t``, ``count``."""
    edges = np.arange(0.0, horizon_s + bucket_s, bucket_s)
    counts, _ = np.histogram(np.asarray(times, dtype=float), edges)
    return pd.DataFrame({"t": edges[:-1], "count": counts})


def run_outage(
    policy: RetryPolicy,
    *,
    jobs: int = 60,
    outage_s: float = 1.0,
    workers: int = 4,
    max_retries: int = 8,
    seed: int = 0,
    timeout_s: float = 60.0,
) -> OutageResult:
    """Submit ``jobs`` at once to a fresh embedded queue while their dependency is down.

    Args:
        policy: the queue's retry policy (wall seconds).
        jobs: how many jobs (clients) hit the outage together.
        outage_s: how long the dependency fails every call, wall seconds from the submit.
            Use a value longer than the whole run for a sustained failure.
        workers: worker threads.
        max_retries: retries per job; a job still failing after them is dead-lettered.
        seed: seeds the workers' jitter.
        timeout_s: give up waiting for the drain after this long.
    """
    registry = TaskRegistry()
    registry.register("dependency", _dependency)
    config = QueueConfig(retry=policy, default_max_retries=max_retries)
    queue = JobQueue(connect(), f"outage-{uuid.uuid4().hex[:8]}", config, registry=registry)
    ids = [f"client-{i:04d}" for i in range(jobs)]
    t0 = server_time_s(queue.client)
    until = time.time() + outage_s
    queue.submit_many(JobRequest("dependency", {"until": until}, job_id=i) for i in ids)
    with WorkerPool(queue, workers, seed=seed, name=f"outage-{seed}"):
        queue.wait_until_drained(timeout_s=timeout_s)
    records = queue.get_many(ids)
    verdict = check(queue, ids)
    queue.delete()
    return OutageResult(policy, jobs, outage_s, attempt_frame(records, t0=t0), verdict)


def twin_outage(
    policy: RetryPolicy,
    *,
    jobs: int = 60,
    outage_s: float = 1.0,
    workers: int = 4,
    max_retries: int = 8,
    seed: int = 0,
) -> OutageResult:
    """:func:`run_outage` on the virtual backend: ``jobs`` submitted at once, instant
    service, every attempt that starts in the first ``outage_s`` fails
    (``FaultPlan(outages=(Outage(end_s=outage_s),))``), retried with ``policy``; model
    seconds equal wall seconds here (``time_scale=1``), so the policy and the outage are
    the real queue's numbers.

    Args:
        seed: seeds the workers' jitter (each worker draws from its own generator, as a
            real worker does).
    """
    workload = Workload(jobs=jobs, arrival=AllAtOnce(), service=Fixed(seconds=0.0),
                        max_retries=max_retries, time_scale=1.0, seed=seed)  # fmt: skip
    faults = FaultPlan(outages=(Outage(end_s=outage_s),))
    result = run(workload, faults, Setup(workers=workers, retry=policy, backend="virtual"))
    return OutageResult(policy, jobs, outage_s, result.attempts, result.verdict)


def _dependency(payload: dict[str, Any], ctx: JobContext) -> None:
    """Fail while the outage lasts (until the epoch second ``payload["until"]``)."""
    if time.time() < float(payload["until"]):
        raise SimulatedFailure(f"dependency down (attempt {ctx.attempt})")


def outage_schedule(
    policy: RetryPolicy,
    *,
    jobs: int = 60,
    outage_s: float = 1.0,
    max_retries: int = 8,
    seed: int = 0,
) -> pd.DataFrame:
    """When each attempt would start with instant service and unlimited workers: the
    policy's own schedule, with no queue in the way. Every job's first attempt is at 0.

    Returns:
        One row per attempt: ``job``, ``number``, ``started``, ``ok``.
    """
    rng = random.Random(seed)
    rows = []
    for job in range(jobs):
        t, previous = 0.0, None
        for number in range(1, max_retries + 2):
            ok = t >= outage_s
            rows.append({"job": job, "number": number, "started": t, "ok": ok})
            if ok:
                break
            previous = policy.delay_s(number, previous_s=previous, rng=rng)
            t += previous
    return pd.DataFrame(rows, columns=["job", "number", "started", "ok"])
