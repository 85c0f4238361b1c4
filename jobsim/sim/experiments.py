"""Small drivers and tables for the experiments of docs/experiments.md that one :func:`sweep` grid
does not express: a utilisation sweep that pairs each worker count with its own arrival
rates (E1), per-priority waits beside the priority formula (E5), how long a job stayed
stuck after its worker died (E9, E10), and a queue's status counts sampled over time.

Every function runs the real queue through :func:`jobsim.sim.run` or reads what a run
returned; times are model seconds unless a name says ``wall``.

Example:
    >>> frame = utilisation_sweep({1: [0.5], 4: [0.5, 0.8]}, workload=Workload())  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from jobsim.models import JobStatus
from jobsim.queue import JobQueue
from jobsim.sim.replicas import t_interval
from jobsim.sim.result import RunResult
from jobsim.sim.runner import run
from jobsim.sim.setup import Setup
from jobsim.sim.summary import RunSummary
from jobsim.sim.workload import Poisson, Workload


def within(
    label: str,
    measured: float,
    expected: float,
    band: float,
    *,
    digits: int = 3,
    show_measured: bool = True,
) -> str:
    """A one-line verdict: is ``measured`` within ``band`` of ``expected``?

    Print ``show_measured=False`` verdicts where the measurement depends on timing, so the
    line is the same on every run (a notebook checks it).

    Example:
        >>> within("attempts/job", 1.4213, 1.4167, 0.05)
        'attempts/job 1.421 vs theory 1.417 ± 0.050: PASS'
        >>> within("mean wait", 0.81, 0.7455, 0.37, show_measured=False)
        'mean wait vs theory 0.746 ± 0.370: PASS'
    """
    ok = abs(measured - expected) <= band
    shown = f" {measured:.{digits}f}" if show_measured else ""
    return (
        f"{label}{shown} vs theory {expected:.{digits}f} ± {band:.{digits}f}: "
        f"{'PASS' if ok else 'FAIL'}"
    )


MIN_JOBS = 40
"""Fewest jobs per point of a utilisation sweep, however short its wall-time budget."""


def utilisation_sweep(
    points: Mapping[int, Sequence[float]],
    *,
    workload: Workload,
    jobs: int | None = None,
    runs: int = 1,
    wall_s: float = 1.5,
    time_scales: Mapping[int, float] | None = None,
    setup: Setup | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run each worker count at its utilisations with Poisson arrivals, ``runs`` seeded
    replications per point; one row per point, compared with Erlang C at the nominal rates.

    The arrival rate of a point is ``rho * c / E[S]``. Each run has ``jobs`` jobs, or (when
    ``jobs`` is None, for the real queue) about ``wall_s`` of wall time worth of arrivals
    (at least :data:`MIN_JOBS`), so low utilisations do not dominate a wall-clock sweep.
    Run ``k`` of the sweep (counting from 0) uses seed ``workload.seed + k``, so every
    run's sampling error is independent.

    Args:
        points: worker count ``c`` -> nominal utilisations ``rho`` (each below 1).
        workload: the service distribution, seed and time scale to use.
        jobs: jobs per run (default: from ``wall_s``).
        runs: replications per point (their spread gives the confidence interval).
        wall_s: wall seconds of arrivals per run when ``jobs`` is None.
        time_scales: a time scale per worker count (real queue: more workers serve more
            jobs per wall second, and the embedded backend's cost per job grows with load).
        setup: queue and worker settings, backend included (``workers`` is replaced).
        progress: called with (runs done, runs in total) after each run.

    Returns:
        Columns ``workers``, ``utilisation`` (nominal), ``jobs``, ``runs``, ``rate_per_s``,
        ``mean_service_s``, ``wait_s`` (mean over the runs of each run's mean wait after
        warm-up, model s), ``wait_half_width_s`` (its 95% t-interval; NaN for one run),
        ``theory_wait_s`` (Erlang C at the nominal rates), ``wait_per_service`` and
        ``theory_wait_per_service`` (both over the nominal mean service), ``error``
        (relative to the theory), ``measured_utilisation`` and ``overhead_per_attempt_s``
        (means over the runs: what the real queue's own cost adds; 0 on the twin),
        ``valid`` (every run) and ``wall_s`` (all the runs).
    """
    setup = setup or Setup()
    mean_s = workload.service.mean_s
    rows: list[dict[str, Any]] = []
    total = runs * sum(len(rhos) for rhos in points.values())
    done = 0
    for c, rhos in points.items():
        scale = (time_scales or {}).get(c, workload.time_scale)
        for rho in rhos:
            rate = rho * c / mean_s
            n = jobs if jobs is not None else max(MIN_JOBS, round(wall_s * rate / scale))
            arrival = Poisson(rate_per_s=rate)
            summaries = []
            for _ in range(runs):
                seed = workload.seed + done
                w = replace(workload, jobs=n, arrival=arrival, time_scale=scale, seed=seed)
                summaries.append(run(w, setup=replace(setup, workers=c)).summary)
                done += 1
                if progress is not None:
                    progress(done, total)
            rows.append(_sweep_row(c, rho, n, rate, mean_s, summaries))
    return pd.DataFrame(rows)


def _sweep_row(
    c: int, rho: float, jobs: int, rate: float, mean_s: float, summaries: Sequence[RunSummary]
) -> dict[str, Any]:
    waits = t_interval([s.wait_s.mean for s in summaries])
    expected = _or_nan(summaries[0].theory.wait_s)
    overheads = [s.overhead_per_attempt_s for s in summaries]
    overheads = [x for x in overheads if math.isfinite(x)]
    return {
        "workers": c,
        "utilisation": rho,
        "jobs": jobs,
        "runs": len(summaries),
        "rate_per_s": rate,
        "mean_service_s": mean_s,
        "wait_s": waits.mean,
        "wait_half_width_s": waits.half_width if waits.n > 1 else math.nan,
        "theory_wait_s": expected,
        "wait_per_service": waits.mean / mean_s,
        "theory_wait_per_service": expected / mean_s,
        "error": waits.mean / expected - 1 if expected else math.nan,
        "measured_utilisation": float(np.mean([s.measured_utilisation for s in summaries])),
        "overhead_per_attempt_s": float(np.mean(overheads)) if overheads else math.nan,
        "valid": all(s.valid for s in summaries),
        "wall_s": sum(s.wall_s for s in summaries),
    }


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def class_waits(result: RunResult) -> pd.DataFrame:
    """Mean and p99 wait of each priority class, beside the non-preemptive priority formula.

    The warm-up is skipped, as in the run's summary (:attr:`RunResult.steady_jobs`).

    Returns:
        One row per priority, highest first: ``priority``, ``jobs``, ``wait_s``, ``p99_wait_s``,
        ``theory_wait_s`` (the formula at the workload's nominal rates; NaN where it does not
        apply).
    """
    steady = result.steady_jobs
    nominal = result.summary.theory.wait_s_by_priority
    rows = []
    for priority, group in steady.groupby("priority"):
        waits = group["wait_s"].dropna().to_numpy()
        key = str(priority)
        rows.append(
            {
                "priority": int(str(priority)),
                "jobs": len(group),
                "wait_s": float(waits.mean()) if waits.size else math.nan,
                "p99_wait_s": float(np.percentile(waits, 99)) if waits.size else math.nan,
                "theory_wait_s": nominal.get(key, math.nan),
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("priority", ascending=False).reset_index(drop=True)


LOST_LEASE = ("expired", "crashed")
"""Attempt outcomes of a delivery that ended without its worker reporting back."""


def recovery_times(result: RunResult) -> pd.DataFrame:
    """For each attempt whose worker died, how long until its job was given back to the
    queue, and until its next delivery started.

    A thread worker "dies" (fault injection) when its running job ends; the moment of
    death is taken as the attempt's start (its lease, Redis time) plus the job's planned
    service time, which is never later than the real death. The job is given back when a
    worker's round trip finds the lease expired (the attempt's ``ended`` stamp); it then
    waits its turn in the queue like any other job until the next attempt starts.

    Returns:
        One row per lost delivery: ``job_id``, ``number``, ``outcome``, ``died_s``,
        ``given_back_s`` (death to give-back), ``requeued_s`` (give-back to the next start)
        and ``recovery_s`` (their sum: death to the next start), model seconds.
    """
    service = {f"j{job.index:06d}": job.service_s for job in result.workload.plan()}
    attempts = result.attempts.sort_values(["job_id", "number"])
    rows = []
    for job_id, runs in attempts.groupby("job_id"):
        runs = runs.reset_index(drop=True)
        for i in range(len(runs) - 1):
            if runs.loc[i, "outcome"] not in LOST_LEASE:
                continue
            died = float(runs.loc[i, "started"]) + service.get(str(job_id), 0.0)
            given_back, restarted = float(runs.loc[i, "ended"]), float(runs.loc[i + 1, "started"])
            rows.append(
                {
                    "job_id": job_id,
                    "number": int(runs.loc[i, "number"]),
                    "outcome": runs.loc[i, "outcome"],
                    "died_s": died,
                    "given_back_s": given_back - died,
                    "requeued_s": restarted - given_back,
                    "recovery_s": restarted - died,
                }
            )
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)


RECOVERY_COLUMNS = ["job_id", "number", "outcome", "died_s", "given_back_s", "requeued_s",
                    "recovery_s"]  # fmt: skip


def give_back_band(result: RunResult, *, checks: int, alpha: float = 1e-3) -> tuple[float, float]:
    """Where every death-to-give-back time of a run with thread crashes falls, model seconds,
    with probability at least ``1 - alpha`` over ``checks`` of them.

    Heartbeats renew a lease every L/3, so a worker dies with between 2L/3 and L of its
    lease left. The lower end loses one late heartbeat: the supervisor renews the c workers'
    leases one round trip after another, so a renewal can come up to c round trips late
    (a round trip is the measured per-attempt queue cost). The upper end adds the time until
    a worker's round trip finds the expired lease: idle workers wake at the deadline, busy
    ones after their job, so with exponential service that is at most the first of c
    residual services, ``P(> t) = exp(-c t / E[S])`` with E[S] the measured effective
    service, and ``t = E[S] / c * ln(checks / alpha)`` covers all ``checks`` (union bound);
    plus two round trips, one for the give-back, one for the dying job's start and sleep
    running later than planned (the death time is estimated from them).

    Args:
        result: a run with worker crashes.
        checks: how many give-back times will be compared with the band.
        alpha: the chance the band may miss one of them.
    """
    lease, c = result.setup.lease_s, result.setup.workers
    s = result.summary
    trip = s.overhead_per_attempt_s if math.isfinite(s.overhead_per_attempt_s) else 0.0
    notice = s.effective_service_s / c * math.log(max(checks, 1) / alpha)
    return 2 * lease / 3 - c * trip, lease + notice + 2 * trip


def sample_statuses(
    queue: JobQueue, *, every_s: float = 0.05, timeout_s: float = 60.0
) -> pd.DataFrame:
    """Poll ``queue.stats()`` until nothing is active (or ``timeout_s``); one row per poll.

    Returns:
        Columns ``t_s`` (wall seconds since the first poll) and one count per status.
    """
    rows = []
    started = time.monotonic()
    while True:
        stats = queue.stats()
        rows.append({"t_s": time.monotonic() - started, **stats.by_status()})
        if stats.active == 0 or time.monotonic() - started > timeout_s:
            break
        time.sleep(every_s)
    return pd.DataFrame(rows, columns=["t_s", *(s.value for s in JobStatus)])
