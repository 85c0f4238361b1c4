"""``run`` a workload on the real queue with a fault plan.

A run submits the planned jobs at their (scaled) arrival times, lets a worker pool serve
them while an :class:`~jobsim.sim.injector.Injector` applies the timed faults, drains the
queue, and returns tidy DataFrames and a :class:`~jobsim.sim.summary.RunSummary`, both in
model seconds, the checker's verdict and the theory that applies.

Everything the caller gives and gets is in model seconds (but the names that say ``wall``,
and ``prefetch_s`` and ``drain_timeout_s``, knobs of the real queue). The wall clock enters
at the edges of the real run: :func:`wall_config` (the queue's retry policy, lease and aging) and
:func:`run` (the pool's job timeout) multiply the :class:`Setup`'s durations by the
workload's ``time_scale``, as the submit loop does the arrivals, the ``sim`` task's payload
(:func:`~jobsim.sim.job.job_payload`) the service times and the injector the fault times;
the frames and the queue-count samples are divided by it once, where they are built.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import redis

from jobsim.config import Lease, QueueConfig, Retention
from jobsim.connection import server_time_s
from jobsim.limits import RateLimit
from jobsim.pool import WorkerPool
from jobsim.queue import JobQueue
from jobsim.requests import JobRequest
from jobsim.sim.backend import clock_offset_s, open_backend
from jobsim.sim.checker import check
from jobsim.sim.faults import FaultPlan
from jobsim.sim.injector import Injector
from jobsim.sim.job import TASK, job_id, job_payload
from jobsim.sim.progress import ProgressBar
from jobsim.sim.result import RunResult
from jobsim.sim.sampler import Sampler
from jobsim.sim.setup import Setup
from jobsim.sim.summary import summarize
from jobsim.sim.timing import attempt_frame, job_frame
from jobsim.sim.virtual import run_virtual
from jobsim.sim.workload import PlannedJob, Workload

Progress = bool | Callable[[int, int], None]
"""True for a progress bar on stderr, or a callback (jobs finished, jobs in total)."""


def run(
    workload: Workload,
    faults: FaultPlan | None = None,
    setup: Setup | None = None,
    *,
    progress: Progress = False,
) -> RunResult:
    """Run ``workload`` on the real queue and report what happened.

    Example:
        >>> result = run(Workload(jobs=200), setup=Setup(workers=4))  # doctest: +SKIP
        >>> result.summary.valid, result.summary.wait_s.mean  # doctest: +SKIP

    Args:
        workload: what to submit, when.
        faults: what goes wrong (default: nothing).
        setup: workers, backend and queue settings (``backend="virtual"``: the
            discrete-event twin, :func:`jobsim.sim.virtual.run_virtual`).
        progress: True for a progress bar on stderr, or a callback (done, total).
    """
    faults = faults or FaultPlan()
    setup = setup or Setup()
    if setup.backend == "virtual":
        return run_virtual(workload, faults, setup, progress=progress)
    scale = workload.time_scale
    with open_backend(setup, faults) as (client, server):
        queue = JobQueue(client, f"sim-{uuid.uuid4().hex[:8]}", wall_config(setup, workload))
        plan = workload.plan()
        pool = WorkerPool(
            queue,
            setup.workers,
            setup.mode,
            job_timeout_s=None if setup.job_timeout_s is None else setup.job_timeout_s * scale,
            prefetch_s=setup.prefetch_s,  # wall seconds already
            seed=workload.seed,
        )
        with pool:
            t0 = server_time_s(client)
            origin = t0 + clock_offset_s(client)  # model time 0 on the workers' clock
            started = time.monotonic()
            injector = Injector(faults, workload, pool, client, server, started, queue)
            sampler = Sampler(queue, started)
            injector.start()
            sampler.start()
            ids = _submit(queue, plan, workload, faults, pool, started, origin)
            _drain(queue, len(plan), setup.drain_timeout_s, progress)
            injector.stop()
            sampler.stop()
            wall_s = time.monotonic() - started
        records = queue.get_many(ids)
        verdict = check(queue, ids, ran_twice=pool.discarded)
        index = {job_id: i for i, job_id in enumerate(ids)}
        jobs = job_frame(records, t0=t0, index=index, time_scale=scale)
        attempts = attempt_frame(records, t0=t0, time_scale=scale)
        samples = [(t / scale, k) for t, k in sampler.samples]
        applied = [f"{at:g} s {kind}: {d}" for at, kind, d in injector.events]
        summary = summarize(
            jobs, attempts, verdict, workload, setup, faults, wall_s, samples, applied
        )
        queue.delete()
    return RunResult(
        workload, faults, setup, jobs, attempts, verdict, summary, tuple(injector.events)
    )


def wall_config(setup: Setup, workload: Workload) -> QueueConfig:
    """The real queue's settings for a run: the setup's retry policy, lease and aging
    (model seconds) in wall seconds, the workload's ``time_scale`` per model second.

    Example:
        >>> config = wall_config(Setup(lease_s=30.0, aging_s=2.0), Workload(time_scale=0.01))
        >>> config.lease.duration_s, config.aging_s
        (0.3, 0.02)
    """
    scale = workload.time_scale
    return QueueConfig(
        retry=setup.retry.scaled(scale),
        lease=Lease(duration_s=setup.lease_s * scale),
        aging_s=None if setup.aging_s is None else setup.aging_s * scale,
        default_max_retries=workload.max_retries,
        retention=Retention(max_completed=None, max_age_s=None),  # the run reads them all
        **task_limits(setup, scale),
    )


def _submit(
    queue: JobQueue,
    plan: list[PlannedJob],
    workload: Workload,
    faults: FaultPlan,
    pool: WorkerPool,
    started: float,
    origin: float,
) -> list[str]:
    """Submit each job at its arrival time; jobs already due go together in one batch.

    ``origin`` is model time 0 (the run's Redis-clock start) on the workers' epoch clock,
    where the payloads' spike windows are placed.
    """
    ids = [job_id(job.index) for job in plan]
    delays = workload.delays()
    workers = pool.worker_ids
    pending = 0
    while pending < len(plan):
        now = time.monotonic() - started
        due = pending
        while due < len(plan) and plan[due].arrival_s * workload.time_scale <= now:
            due += 1
        if due == pending:
            time.sleep(min(plan[pending].arrival_s * workload.time_scale - now, 0.05))
            continue
        requests = [
            JobRequest(
                TASK,
                job_payload(job, workload, faults, worker_ids=workers, spike_origin_s=origin),
                job.priority,
                workload.max_retries,
                ids[job.index],
                delay_s=None if delays is None else float(delays[job.index]) * workload.time_scale,
            )
            for job in plan[pending:due]
        ]
        _patiently(partial(queue.submit_many, requests))  # same ids: a replay is a no-op
        pending = due
    return ids


def task_limits(setup: Setup, time_scale: float) -> dict[str, Any]:
    """The :class:`QueueConfig` limits of the simulated task for ``setup``'s model-time
    ``rate_limit`` and ``concurrency_limit``: a rate of ``per_s`` a model second is
    ``per_s / time_scale`` a wall second.

    Example:
        >>> task_limits(Setup(rate_limit=RateLimit(per_s=2, burst=3)), 0.5)["rate_limits"]
        {'sim': RateLimit(per_s=4.0, burst=3)}
    """
    limits: dict[str, Any] = {}
    if setup.rate_limit is not None:
        rate = setup.rate_limit
        limits["rate_limits"] = {TASK: RateLimit(per_s=rate.per_s / time_scale, burst=rate.burst)}
    if setup.concurrency_limit is not None:
        limits["concurrency_limits"] = {TASK: setup.concurrency_limit}
    return limits


def _drain(queue: JobQueue, total: int, timeout_s: float, progress: Progress) -> None:
    deadline = time.monotonic() + timeout_s
    bar = ProgressBar() if progress is True else None
    report = progress if callable(progress) else bar
    while True:
        stats = _patiently(queue.stats)
        done = stats.completed + stats.failed
        if report:
            report(done, total)
        if stats.active == 0:  # every job was submitted before the drain began
            break
        if time.monotonic() > deadline:
            break  # the checker reports what is left
        time.sleep(0.05)
    if bar is not None:
        bar.close()


T = TypeVar("T")


def _patiently(call: Callable[[], T], patience_s: float = 30.0) -> T:
    """Retry a replay-safe call while Redis is unreachable (a restart, a failover)."""
    deadline = time.monotonic() + patience_s
    pause = 0.05
    while True:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
