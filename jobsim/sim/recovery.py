"""How a job held by a dead worker comes back (E10), measured on the virtual backend and
checked against the lease rules and the formula :func:`jobsim.theory.lease_give_back_s`.

A worker thread that crashes (``FaultPlan(worker_crashes=...)``) finishes its job, throws
the result away and stops heartbeating its lease. The lease was last renewed at the later
of its dequeue and the last heartbeat (every ``Lease.heartbeat_every_s``, on a grid from
model time 0) and runs out ``lease_s`` after that: the *deadline*. The job is given back by
the first ``DEQUEUE`` at or after the deadline: at once if a worker is idle, else when a
busy worker ends an attempt and reports it. On the twin both ends are exact, so every
crashed delivery is checked, not sampled: given back no earlier than its deadline and no
later than that next ``DEQUEUE``.

Everything here is in model seconds and reads a twin's frames (``Setup(backend="virtual")``):
the death time is the attempt's start plus its planned service, which on the twin is the
time the worker really ended it (the real queue's worker ends it later by its own cost,
and its heartbeat grid has an unknown phase, so a real run gets measurements, not checks).

Example:
    >>> from jobsim.sim import Exponential, FaultPlan, Poisson, Setup, Workload, run
    >>> w = Workload(jobs=400, arrival=Poisson(rate_per_s=3.0),
    ...              service=Exponential(mean_s=1.0), time_scale=1.0, seed=1)
    >>> r = run(w, FaultPlan(worker_crashes=4, seed=1),
    ...         Setup(workers=4, lease_s=5.0, backend="virtual"))
    >>> frame = give_backs(r)
    >>> len(frame), bool(frame["exact"].all())
    (4, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from jobsim import theory
from jobsim.config import Lease
from jobsim.errors import InvalidInputError
from jobsim.sim.faults import FaultPlan
from jobsim.sim.replicas import t_interval
from jobsim.sim.result import RunResult
from jobsim.sim.runner import run
from jobsim.sim.setup import Setup
from jobsim.sim.workload import Exponential, Poisson, Workload

ACKNOWLEDGED = ("completed", "retry", "failed")
"""Attempt outcomes a worker reported: each report is a round trip that runs a ``DEQUEUE``."""

GIVE_BACK_COLUMNS = ["job_id", "number", "died_s", "deadline_s", "given_back_s",
                     "next_dequeue_s", "restarted_s", "exact"]  # fmt: skip


def give_backs(result: RunResult) -> pd.DataFrame:
    """One row per delivery whose worker crashed, from a twin's frames, model seconds.

    Returns:
        Columns ``job_id``, ``number``, ``died_s`` (the worker ended the job), ``deadline_s``
        (the lease ran out), ``given_back_s`` (the attempt's ``ended``: the job was queued
        again), ``next_dequeue_s`` (the deadline if a worker was idle then, else the first
        reported attempt end at or after it), ``restarted_s`` (the next attempt's start,
        NaN if none) and ``exact`` (``deadline_s <= given_back_s <= next_dequeue_s``).

    Raises:
        InvalidInputError: if ``result`` is not a virtual-backend run.
    """
    if result.setup.backend != "virtual":
        raise InvalidInputError(
            "give-back times are exact on the virtual backend only",
            field="backend",
            value=result.setup.backend,
        )
    lease = Lease(duration_s=result.setup.lease_s)
    beat = lease.heartbeat_every_s
    service = {f"j{job.index:06d}": job.service_s for job in result.workload.plan()}
    attempts = result.attempts.sort_values(["job_id", "number"]).reset_index(drop=True)
    expired = attempts["outcome"].eq("expired").to_numpy()
    started = attempts["started"].to_numpy(dtype=float)
    planned = attempts["job_id"].map(service).to_numpy(dtype=float)
    # a crashed worker is busy until it ends the job, not until the lease is given back
    work_end = np.where(expired, started + planned, attempts["ended"].to_numpy(dtype=float))
    acked = attempts["outcome"].isin(ACKNOWLEDGED).to_numpy()
    ack_ends = np.sort(work_end[acked])
    workers = result.setup.workers
    rows = []
    for i in np.flatnonzero(expired):
        died = float(work_end[i])
        last_beat = math.floor(died / beat) * beat
        deadline = max(last_beat, float(started[i])) + lease.duration_s
        busy = int(((started < deadline) & (work_end > deadline)).sum())
        later = ack_ends[ack_ends >= deadline]
        next_dequeue = float(later[0]) if later.size else math.inf
        if busy < workers:  # an idle worker's DEQUEUE wakes at the deadline
            next_dequeue = deadline
        given_back = float(attempts.loc[i, "ended"])
        same_job = (
            i + 1 < len(attempts) and attempts.loc[i + 1, "job_id"] == attempts.loc[i, "job_id"]
        )
        rows.append(
            {
                "job_id": attempts.loc[i, "job_id"],
                "number": int(attempts.loc[i, "number"]),
                "died_s": died,
                "deadline_s": deadline,
                "given_back_s": given_back,
                "next_dequeue_s": next_dequeue,
                "restarted_s": float(started[i + 1]) if same_job else math.nan,
                "exact": deadline <= given_back <= next_dequeue,
            }
        )
    return pd.DataFrame(rows, columns=GIVE_BACK_COLUMNS)


def expected_give_back_s(workload: Workload, setup: Setup) -> float:
    """:func:`jobsim.theory.lease_give_back_s` for a Poisson/exponential workload: the
    setup's lease and heartbeat, the workload's mean service, and Erlang C for the chance
    that every worker is busy at the deadline."""
    if not (isinstance(workload.arrival, Poisson) and isinstance(workload.service, Exponential)):
        raise InvalidInputError(
            "the give-back formula is for Poisson arrivals and exponential service",
            field="workload",
            value=workload,
        )
    lease = Lease(duration_s=setup.lease_s)
    mean_s = workload.service.mean_s
    return theory.lease_give_back_s(
        lease.duration_s,
        heartbeat_s=lease.heartbeat_every_s,
        mean_service_s=mean_s,
        c=setup.workers,
        p_all_busy=theory.erlang_c(setup.workers, workload.arrival_rate_per_s * mean_s),
    )


def outran_lease(result: RunResult) -> int:
    """Reported attempts that ran longer than the lease (measured in the attempt log): each
    would have been delivered twice by a queue without heartbeats."""
    done = result.attempts[result.attempts["outcome"].isin(ACKNOWLEDGED)]
    return int((done["service_s"] > result.setup.lease_s).sum())


def recovery_sweep(
    workload: Workload,
    leases: Sequence[float],
    *,
    crashes: int,
    runs: int,
    workers: int = 4,
) -> pd.DataFrame:
    """Run ``workload`` on the twin with ``crashes`` worker crashes, ``runs`` seeded
    replications per lease (seeds ``workload.seed + i``), and check every give-back.

    Returns:
        One row per lease: ``lease_s``, ``runs``, ``crashed`` (deliveries lost with their
        worker), ``crashed_jobs`` (distinct jobs among them, per run, summed), ``exact``
        (how many were given back within [deadline, next DEQUEUE]), ``given_back``
        (:class:`~jobsim.sim.replicas.Interval` of the per-run mean time from death to
        give-back), ``theory_s`` (:func:`expected_give_back_s`),
        ``restart`` (Interval of death to the next start, which adds the queue's wait),
        ``duplicates`` and ``crash_events`` (the checker's duplicated jobs and the crashes
        the twin applied, summed), ``outran`` (:func:`outran_lease`, summed), ``jobs``
        (submitted, summed) and ``lost``.
    """
    rows = []
    for lease in leases:
        setup = Setup(workers=workers, lease_s=lease, backend="virtual")
        frames, dup, events, outran, jobs, lost = [], 0, 0, 0, 0, 0
        for i in range(runs):
            seeded = replace(workload, seed=workload.seed + i)
            result = run(seeded, FaultPlan(worker_crashes=crashes, seed=seeded.seed), setup)
            frames.append(give_backs(result))
            dup += result.verdict.duplicates
            events += sum(1 for _, kind, _ in result.events if kind == "crash")
            outran += outran_lease(result)
            jobs += result.verdict.submitted
            lost += result.verdict.lost
        per_run = [float((f["given_back_s"] - f["died_s"]).mean()) for f in frames if len(f)]
        restart = [float((f["restarted_s"] - f["died_s"]).mean()) for f in frames if len(f)]
        rows.append(
            {
                "lease_s": lease,
                "runs": runs,
                "crashed": sum(len(f) for f in frames),
                "crashed_jobs": sum(int(f["job_id"].nunique()) for f in frames),
                "exact": sum(int(f["exact"].sum()) for f in frames),
                "given_back": t_interval(per_run),
                "theory_s": expected_give_back_s(workload, setup),
                "restart": t_interval(restart),
                "duplicates": dup,
                "crash_events": events,
                "outran": outran,
                "jobs": jobs,
                "lost": lost,
            }
        )
    return pd.DataFrame(rows)


def without_heartbeats(jobs: int, lease_s: float, mean_service_s: float) -> tuple[float, float]:
    """How many of ``jobs`` exponential services outrun a lease, ``N e^{-L/m}``, and the
    4-sigma binomial band around it (each such job is a duplicate without heartbeats)."""
    q = math.exp(-lease_s / mean_service_s)
    return jobs * q, jobs * theory.binomial_band(q, jobs)
