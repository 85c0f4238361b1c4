"""``run`` a workload on the real queue with a fault plan, and ``sweep`` a grid of runs.

A run submits the planned jobs at their (scaled) arrival times, lets a worker pool serve
them while an injector applies the timed faults, drains the queue, and returns tidy
DataFrames, a summary in model units, the checker's verdict and the theory that applies.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, TypeVar

import fakeredis
import numpy as np
import pandas as pd
import redis

from jobsim.config import Lease, QueueConfig, Retention
from jobsim.connection import connect, embedded_client, is_embedded, server_time_s
from jobsim.localredis import LocalRedis
from jobsim.pool import Mode, WorkerPool
from jobsim.queue import JobQueue, JobRequest
from jobsim.retry import RetryPolicy
from jobsim.sim.checker import Verdict, check
from jobsim.sim.faults import FaultPlan
from jobsim.sim.predict import predictions
from jobsim.sim.timing import (
    attempt_frame,
    busy_gap_s,
    job_frame,
    percentiles,
    worked,
)
from jobsim.sim.workload import Constant, PlannedJob, Poisson, Workload

Backend = Literal["embedded", "local"] | str


@dataclass(frozen=True, kw_only=True)
class Setup:
    """How the queue and workers are set up for a run (everything but workload and faults).

    Args:
        workers: worker count.
        mode: ``thread`` or ``process``.
        backend: ``embedded`` (a fresh in-process fakeredis), ``local`` (a throwaway
            redis-server this run starts, needed to restart Redis), or a ``redis://`` URL.
        retry: backoff between attempts, in wall seconds.
        lease_s: lease length in wall seconds.
        aging_s: wall seconds of waiting worth one priority level (None: strict).
        job_timeout_s: per-job timeout in wall seconds.
        prefetch_s: how much work a worker leases ahead.
        drain_timeout_s: give up waiting for the drain after this long.
    """

    workers: int = 4
    mode: Mode = "thread"
    backend: Backend = "embedded"
    retry: RetryPolicy = field(default_factory=RetryPolicy.immediate)
    lease_s: float = 5.0
    aging_s: float | None = None
    job_timeout_s: float | None = None
    prefetch_s: float = 0.002
    drain_timeout_s: float = 300.0


@dataclass
class RunResult:
    """Everything one run produced."""

    workload: Workload
    faults: FaultPlan
    setup: Setup
    jobs: pd.DataFrame
    attempts: pd.DataFrame
    verdict: Verdict
    summary: dict[str, Any]
    events: list[tuple[float, str, str]]  # (model time, fault, detail) as applied


def run(
    workload: Workload,
    faults: FaultPlan | None = None,
    setup: Setup | None = None,
    *,
    progress: bool | Callable[[int, int], None] = False,
) -> RunResult:
    """Run ``workload`` on the real queue and report what happened.

    Example:
        >>> result = run(Workload(jobs=200), setup=Setup(workers=4))  # doctest: +SKIP
        >>> result.summary["valid"], result.summary["wait_s"]["mean"]  # doctest: +SKIP

    Args:
        workload: what to submit, when.
        faults: what goes wrong (default: nothing).
        setup: workers, backend and queue settings.
        progress: True for a progress bar on stderr, or a callback (done, total).
    """
    faults = faults or FaultPlan()
    setup = setup or Setup()
    with _backend(setup, faults) as (client, server):
        config = QueueConfig(
            retry=setup.retry,
            lease=Lease(duration_s=setup.lease_s),
            aging_s=setup.aging_s,
            default_max_retries=workload.max_retries,
            retention=Retention(max_completed=None, max_age_s=None),  # the run reads them all
        )
        queue = JobQueue(client, f"sim-{uuid.uuid4().hex[:8]}", config)
        plan = workload.plan()
        pool = WorkerPool(
            queue,
            setup.workers,
            setup.mode,
            job_timeout_s=setup.job_timeout_s,
            prefetch_s=setup.prefetch_s,
            seed=workload.seed,
        )
        with pool:
            t0 = server_time_s(client)
            started = time.monotonic()
            injector = _Injector(faults, workload, pool, client, server, started)
            sampler = _Sampler(queue, started)
            injector.start()
            sampler.start()
            ids = _submit(queue, plan, workload, faults, pool, started)
            _drain(queue, len(plan), setup.drain_timeout_s, progress)
            injector.stop()
            sampler.stop()
            wall_s = time.monotonic() - started
        records = queue.get_many(ids)
        verdict = check(queue, ids, ran_twice=pool.discarded)
        index = {job_id: i for i, job_id in enumerate(ids)}
        jobs = job_frame(records, t0=t0, index=index)
        attempts = attempt_frame(records, t0=t0)
        summary = summarize(
            jobs, attempts, verdict, workload, setup, faults, wall_s, sampler.samples
        )
        summary["faults_applied"] = [f"{at:g} s {kind}: {d}" for at, kind, d in injector.events]
        queue.delete()
    return RunResult(workload, faults, setup, jobs, attempts, verdict, summary, injector.events)


def sweep(
    grid: Mapping[str, Sequence[Any]],
    *,
    workload: Workload | None = None,
    faults: FaultPlan | None = None,
    setup: Setup | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Run every combination of ``grid`` and return one tidy row per run.

    Keys of ``grid`` name fields of :class:`Workload` (``jobs``, ``fail_probability``,
    ``seed`` ...) or :class:`Setup` (``workers``, ``mode`` ...), or ``rate_per_s`` for a
    Poisson arrival rate.

    Example:
        >>> sweep({"workers": [1, 2, 4], "seed": [1, 2]})  # doctest: +SKIP
    """
    workload, setup = workload or Workload(), setup or Setup()
    keys = list(grid)
    rows = []
    combos = list(itertools.product(*(grid[k] for k in keys)))
    for n, values in enumerate(combos, 1):
        point = dict(zip(keys, values, strict=True))
        w, s = _apply(point, workload, setup)
        if progress:
            print(f"[{n}/{len(combos)}] {point}", file=sys.stderr, flush=True)
        result = run(w, faults, s)
        rows.append({**point, **flatten(result.summary)})
    return pd.DataFrame(rows)


def summarize(
    jobs: pd.DataFrame,
    attempts: pd.DataFrame,
    verdict: Verdict,
    workload: Workload,
    setup: Setup,
    faults: FaultPlan,
    wall_s: float,
    samples: Sequence[tuple[float, int]] = (),
) -> dict[str, Any]:
    """The run's summary, in model units (wall seconds divided by ``time_scale``).

    Wait and sojourn statistics skip the first 10% of jobs (warm-up). ``theory`` uses the
    workload's rates; ``theory_at_measured_service`` plugs in what the run measured: the
    realised arrival rate, and the mean attempt time plus the queue's own cost per attempt,
    ``overhead_per_attempt_s`` (the busy gap between attempts on one worker, see
    :func:`jobsim.sim.timing.busy_gap_s`). ``littles_law`` compares L sampled from the
    queue's own counts during the run with λ·W from the timestamps.
    """
    scale = workload.time_scale
    service = float(worked(attempts)["service_s"].mean()) / scale
    overhead = busy_gap_s(attempts, jobs) / scale
    effective = service + (overhead if math.isfinite(overhead) else 0.0)
    submit_span = (jobs["submitted"].max() - jobs["submitted"].min()) / scale
    arrivals = (len(jobs) - 1) / submit_span if submit_span > 0 else math.inf
    steady = jobs.iloc[len(jobs) // 10 :]
    finished = jobs.dropna(subset=["finished"])
    span = (finished["finished"].max() - jobs["submitted"].min()) if len(finished) else math.nan
    warnings = []
    if math.isfinite(overhead) and overhead > 0.05 * service:
        warnings.append(
            f"the queue's own cost per attempt is {overhead / service:.0%} of the service time; "
            "raise time_scale for a closer match to the theory"
        )
    return {
        "submitted": verdict.submitted,
        "completed": verdict.completed,
        "failed": verdict.dead_lettered,
        "lost": verdict.lost,
        "duplicates": verdict.duplicates,
        "redelivered": verdict.redelivered,
        "attempts_per_job": float(jobs["attempts"].mean()) if len(jobs) else math.nan,
        "dead_letter_rate": verdict.dead_lettered / max(verdict.submitted, 1),
        "throughput_per_s": len(finished) / span * scale if span and span > 0 else math.nan,
        "wait_s": _scaled(percentiles(steady["wait_s"]), scale),
        "sojourn_s": _scaled(percentiles(steady["sojourn_s"]), scale),
        "littles_law": _littles_law(finished, samples),
        "arrival_rate_per_s": arrivals,
        "service_s": service,
        "overhead_per_attempt_s": overhead,
        "theory": predictions(workload, setup, faults),
        "theory_at_measured_service": predictions(
            workload, setup, faults, mean_service_s=effective, arrival_rate_per_s=arrivals
        ),
        "warnings": warnings,
        "valid": verdict.valid,
        "wall_s": wall_s,
        "time_scale": scale,
    }


def _littles_law(finished: pd.DataFrame, samples: Sequence[tuple[float, int]]) -> dict[str, float]:
    """L sampled from the queue's counts over the busy window, with a 99% batch-means
    half-width (10 batches), beside λ·W from the jobs' timestamps (same, wall units)."""
    if finished.empty:
        return {"l_sampled": math.nan, "l_half_width": math.nan, "lambda_w": math.nan}
    start, end = float(finished["submitted"].min()), float(finished["finished"].max())
    counts = np.array([n for t, n in samples if start <= t <= end], dtype=float)
    lambda_w = len(finished) / (end - start) * float(finished["sojourn_s"].mean())
    if counts.size < 20:
        return {"l_sampled": math.nan, "l_half_width": math.nan, "lambda_w": lambda_w}
    batches = np.array([b.mean() for b in np.array_split(counts, 10)])
    half_width = 3.25 * float(batches.std(ddof=1)) / math.sqrt(len(batches))  # t(0.995, 9)
    return {"l_sampled": float(counts.mean()), "l_half_width": half_width, "lambda_w": lambda_w}


def flatten(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary -> flat ``a.b`` keys, for a tidy DataFrame row or CSV."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# --- internals ------------------------------------------------------------------------------


@contextmanager
def _backend(setup: Setup, faults: FaultPlan) -> Iterator[tuple[redis.Redis, LocalRedis | None]]:
    if setup.backend == "embedded":
        yield embedded_client(fakeredis.FakeServer()), None
    elif setup.backend == "local":
        persistence = faults.redis_restart.persistence if faults.redis_restart else "none"
        with LocalRedis(persistence=persistence) as server:
            yield connect(server.url), server
    else:
        yield connect(setup.backend), None


def _payload(
    job: PlannedJob, workload: Workload, faults: FaultPlan, pool: WorkerPool, t_epoch: float
) -> dict[str, Any]:
    scale = workload.time_scale
    p = 1 - (1 - job.fail_probability) * (1 - faults.exception_probability)
    payload: dict[str, Any] = {
        "seconds": job.service_s * scale,
        "fail_probability": p,
        "seed": workload.seed,
    }
    if job.index in faults.poison:
        payload["poison"] = faults.poison[job.index]
    if faults.spikes:
        payload["spikes"] = [
            [t_epoch + sp.start_s * scale, t_epoch + sp.end_s * scale, sp.extra_s * scale]
            for sp in faults.spikes
        ]
    if faults.slow_worker_factor > 1 and pool.worker_ids:
        payload["slow_workers"] = pool.worker_ids[:1]
        payload["slow_factor"] = faults.slow_worker_factor
    return payload


def _submit(
    queue: JobQueue,
    plan: list[PlannedJob],
    workload: Workload,
    faults: FaultPlan,
    pool: WorkerPool,
    started: float,
) -> list[str]:
    """Submit each job at its arrival time; jobs already due go together in one batch."""
    t_epoch = time.time()
    ids = [f"j{job.index:06d}" for job in plan]
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
                "sim",
                _payload(job, workload, faults, pool, t_epoch),
                job.priority,
                workload.max_retries,
                ids[job.index],
            )
            for job in plan[pending:due]
        ]
        _patiently(partial(queue.submit_many, requests))  # same ids: a replay is a no-op
        pending = due
    return ids


def _drain(
    queue: JobQueue, total: int, timeout_s: float, progress: bool | Callable[[int, int], None]
) -> None:
    deadline = time.monotonic() + timeout_s
    report = progress if callable(progress) else (_bar if progress else None)
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
    if progress is True:
        sys.stderr.write("\n")


def _bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled:<{width}}] {done}/{total} jobs finished")
    sys.stderr.flush()


class _Sampler(threading.Thread):
    """Samples how many jobs are in the system (queued, processing, retrying) every few
    milliseconds, from the queue's own counts: an L independent of the timestamps."""

    def __init__(self, queue: JobQueue, started: float, every_s: float = 0.005) -> None:
        super().__init__(name="jobsim-sampler", daemon=True)
        self.queue, self.started, self.every_s = queue, started, every_s
        self.samples: list[tuple[float, int]] = []  # (seconds since start, jobs in system)
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(self.every_s):
            try:
                active = self.queue.stats().active
            except redis.RedisError:
                continue  # Redis restarting: no sample
            self.samples.append((time.monotonic() - self.started, active))


class _Injector(threading.Thread):
    """Applies the plan's timed faults at their model times."""

    def __init__(
        self,
        faults: FaultPlan,
        workload: Workload,
        pool: WorkerPool,
        client: redis.Redis,
        server: LocalRedis | None,
        started: float,
    ) -> None:
        super().__init__(name="jobsim-fault-injector", daemon=True)
        horizon = max((j.arrival_s for j in workload.plan()), default=0.0)
        self.timeline = faults.timeline(horizon, workload.seed)
        self.scale = workload.time_scale
        self.pool, self.client, self.server, self.started = pool, client, server, started
        self.rng = random.Random(f"{faults.seed}:injector")
        self.events: list[tuple[float, str, str]] = []
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join()
        for at_s, kind, _ in self.timeline[len(self.events) :]:
            self.events.append((at_s, kind, "not applied: the run ended first"))

    def run(self) -> None:
        for at_s, kind, arg in self.timeline:
            wait = self.started + at_s * self.scale - time.monotonic()
            if wait > 0 and self._done.wait(wait):
                return
            detail = self._apply(kind, arg)
            if detail is None:
                return  # the run ended before a worker was busy; stop() records it
            self.events.append((at_s, kind, detail))

    def _crash(self) -> str | None:
        """Kill a busy worker, waiting for one to be busy (a crash is mid-job)."""
        while not self._done.is_set():
            busy = self.pool.busy_worker_ids()
            if busy:
                worker = self.rng.choice(busy)
                self.pool.kill_worker(worker)
                return f"killed worker {worker}"
            self._done.wait(0.002)
        return None

    def _apply(self, kind: str, arg: float) -> str | None:
        embedded = is_embedded(self.client)
        try:
            if kind == "crash":
                return self._crash()
            if embedded and kind in ("drop", "pause"):
                return "skipped: the embedded backend has no client connections"
            if kind == "drop":
                killed = self.client.client_kill_filter(_type="normal", skipme=True)
                return f"{killed} connections killed"
            if kind == "pause":
                self.client.client_pause(round(arg * self.scale * 1000), all=True)
                return f"paused {arg * self.scale:.3f} s"
            if self.server is None:
                return "skipped: only a server this run started (backend='local') can restart"
            self.server.restart(hard=True)
            return f"restarted ({self.server.persistence})"
        except redis.RedisError as exc:
            return f"failed: {exc}"


def _apply(point: Mapping[str, Any], workload: Workload, setup: Setup) -> tuple[Workload, Setup]:
    w_fields = {k: v for k, v in point.items() if k in Workload.__dataclass_fields__}
    s_fields = {k: v for k, v in point.items() if k in Setup.__dataclass_fields__}
    if "rate_per_s" in point:
        if not isinstance(workload.arrival, (Poisson, Constant)):
            raise ValueError("rate_per_s sweeps need Poisson or Constant arrivals")
        w_fields["arrival"] = replace(workload.arrival, rate_per_s=point["rate_per_s"])
    unknown = set(point) - set(w_fields) - set(s_fields) - {"rate_per_s"}
    if unknown:
        raise ValueError(f"sweep keys must name Workload or Setup fields: {sorted(unknown)}")
    return replace(workload, **w_fields), replace(setup, **s_fields)


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


def _scaled(stats: dict[str, float], scale: float) -> dict[str, float]:
    return {k: v / scale for k, v in stats.items()}
