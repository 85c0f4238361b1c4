"""Timing capture as pandas DataFrames, built from the Redis-``TIME`` timestamps the queue
records (one clock for every worker and host).

``jobs``: one row per job — ``submitted``, ``started`` (first attempt), ``finished``,
``wait_s`` (first start minus submit), ``service_s`` (time spent running, all attempts),
``sojourn_s`` (finish minus submit), ``attempts``, ``outcome`` (completed / failed),
``priority``, ``worker`` (last), ``redeliveries``, ``fenced``, ``duplicate`` (a fenced
late result: the job certainly ran more than once to the end).

``attempts``: one row per attempt — ``job_id``, ``number``, ``worker``, ``started``,
``ended``, ``service_s``, ``outcome``, ``error``.

Times are seconds relative to ``t0`` (the run's start, Redis time) when given, divided by
``time_scale`` when given: the simulator's runner passes its workload's, so its frames are
in model seconds, as the virtual backend's are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from jobsim.models import Job

JOB_COLUMNS = [
    "job_id", "index", "priority", "submitted", "started", "finished", "wait_s", "service_s",
    "sojourn_s", "attempts", "outcome", "worker", "redeliveries", "fenced", "duplicate",
]  # fmt: skip
ATTEMPT_COLUMNS = [
    "job_id", "number", "worker", "started", "ended", "service_s", "outcome", "error",
]  # fmt: skip


def job_frame(
    jobs: Iterable[Job],
    *,
    t0: float = 0.0,
    index: dict[str, int] | None = None,
    time_scale: float = 1.0,
) -> pd.DataFrame:
    """One row per job (see the module docstring).

    Args:
        jobs: the job records.
        t0: the time origin (Redis time, seconds).
        index: each job id's index in the plan (-1 when absent).
        time_scale: wall seconds per reported second (1.0: wall seconds).
    """
    rows = []
    for job in jobs:
        log = job.attempt_log
        started = log[0].started_at if log else None
        ran = sum(
            (a.ended_at or 0) - (a.started_at or 0) for a in log if a.ended_at and a.started_at
        )
        rows.append(
            {
                "job_id": job.id,
                "index": (index or {}).get(job.id, -1),
                "priority": job.priority,
                "submitted": job.submitted_at - t0,
                "started": _rel(started, t0),
                "finished": _rel(job.finished_at, t0),
                "wait_s": started - job.submitted_at if started is not None else np.nan,
                "service_s": ran if log else np.nan,
                "sojourn_s": (
                    job.finished_at - job.submitted_at if job.finished_at is not None else np.nan
                ),
                "attempts": job.attempts,
                "outcome": job.status.value,
                "worker": job.worker,
                "redeliveries": job.redeliveries,
                "fenced": job.fenced,
                "duplicate": job.fenced > 0,
            }
        )
    frame = _scaled(pd.DataFrame(rows, columns=JOB_COLUMNS), JOB_TIMES, time_scale)
    return frame.sort_values("submitted", kind="stable").reset_index(drop=True)


def attempt_frame(jobs: Iterable[Job], *, t0: float = 0.0, time_scale: float = 1.0) -> pd.DataFrame:
    """One row per attempt (see the module docstring; ``t0`` and ``time_scale`` as for
    :func:`job_frame`)."""
    rows = [
        {
            "job_id": job.id,
            "number": a.number,
            "worker": a.worker,
            "started": _rel(a.started_at, t0),
            "ended": _rel(a.ended_at, t0),
            "service_s": (a.ended_at - a.started_at if a.ended_at and a.started_at else np.nan),
            "outcome": a.outcome.value,
            "error": a.error,
        }
        for job in jobs
        for a in job.attempt_log
    ]
    return _scaled(pd.DataFrame(rows, columns=ATTEMPT_COLUMNS), ATTEMPT_TIMES, time_scale)


JOB_TIMES = ("submitted", "started", "finished", "wait_s", "service_s", "sojourn_s")
ATTEMPT_TIMES = ("started", "ended", "service_s")


def _scaled(frame: pd.DataFrame, columns: Sequence[str], time_scale: float) -> pd.DataFrame:
    """``frame`` with its time ``columns`` divided by ``time_scale`` (wall to model)."""
    if time_scale != 1.0:
        for column in columns:
            frame[column] = frame[column].astype(float) / time_scale
    return frame


def throughput(jobs: pd.DataFrame, *, bin_s: float) -> pd.DataFrame:
    """Jobs finished per second in bins of ``bin_s``, by outcome: columns ``t``, ``completed``,
    ``failed``."""
    finished = jobs.dropna(subset=["finished"])
    if finished.empty:
        return pd.DataFrame(columns=["t", "completed", "failed"])
    edges = np.arange(0.0, finished["finished"].max() + bin_s, bin_s)
    out = pd.DataFrame({"t": edges[:-1] + bin_s / 2})
    for outcome in ("completed", "failed"):
        counts, _ = np.histogram(finished.loc[finished.outcome == outcome, "finished"], edges)
        out[outcome] = counts / bin_s
    return out


def percentiles(
    values: Sequence[float] | pd.Series, qs: Sequence[int] = (50, 95, 99)
) -> dict[str, float]:
    """``mean`` and ``p50``/``p95``/``p99`` of the finite values (NaN when there are none)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"mean": float("nan"), **{f"p{q}": float("nan") for q in qs}}
    return {"mean": float(arr.mean()), **{f"p{q}": float(np.percentile(arr, q)) for q in qs}}


def time_average_in_system(jobs: pd.DataFrame) -> tuple[float, float]:
    """The mean number of jobs in the system, by integrating the step function "submitted
    and not yet finished" over the window from the first submit to the last finish.

    Returns:
        (L, window length in seconds). Little's law on that window says L equals
        (jobs finished / window) x mean sojourn, exactly, when the window starts and ends
        empty.
    """
    done = jobs.dropna(subset=["finished"])
    if done.empty:
        return float("nan"), 0.0
    times = np.concatenate([done["submitted"].to_numpy(), done["finished"].to_numpy()])
    steps = np.concatenate([np.ones(len(done)), -np.ones(len(done))])
    order = np.argsort(times, kind="stable")
    times, in_system = times[order], np.cumsum(steps[order])
    window = float(times[-1] - times[0])
    area = float(np.sum(in_system[:-1] * np.diff(times)))
    return (area / window if window > 0 else float("nan")), window


WORKER_ENDED = ("completed", "retry", "failed")
"""Outcomes of attempts a worker ran to the end itself (not cut short by a lost lease)."""


def worked(attempts: pd.DataFrame) -> pd.DataFrame:
    """The attempts a worker ran to the end itself: their times are service times."""
    return attempts[attempts["outcome"].isin(WORKER_ENDED)].dropna(subset=["started", "ended"])


def busy_gaps_s(attempts: pd.DataFrame, jobs: pd.DataFrame) -> np.ndarray:
    """The queue's own cost of each attempt: on each worker, the time from the end of one
    attempt to the start of its next, counted only when that next attempt was a first one
    whose job was already submitted (so the worker was not idle; a retry's ready time is
    not recorded, so retries are left out)."""
    submitted = jobs.set_index("job_id")["submitted"]
    frame = worked(attempts).sort_values(["worker", "started"], kind="stable")
    worker = frame["worker"].to_numpy()
    starts, ends = frame["started"].to_numpy(), frame["ended"].to_numpy()
    first = (frame["number"] == 1).to_numpy()
    waiting = submitted.reindex(frame["job_id"]).to_numpy()
    # each attempt and the next one on the same worker
    follows = (worker[1:] == worker[:-1]) & first[1:] & (waiting[1:] <= ends[:-1])
    return np.asarray(starts[1:][follows] - ends[:-1][follows], dtype=float)


def busy_gap_s(attempts: pd.DataFrame, jobs: pd.DataFrame) -> float:
    """The mean of :func:`busy_gaps_s`: the queue's own cost per attempt. NaN when no
    worker went from one attempt straight to the next."""
    gaps = busy_gaps_s(attempts, jobs)
    return float(gaps.mean()) if gaps.size else float("nan")


def idle_dispatch_s(jobs: pd.DataFrame, workers: int) -> np.ndarray:
    """The wait of each job that found a worker free: submit to first start, which M/M/c
    says is 0, so on the real queue it is the queue's own dispatch latency (a worker's
    wake-up, the ``DEQUEUE`` round trip). Same unit as the frame.

    A job found a worker free when fewer than ``workers`` other jobs were in the system
    (submitted before it and not yet finished) at its submit time.
    """
    done = jobs.dropna(subset=["started", "finished"])
    submitted = done["submitted"].to_numpy(dtype=float)
    before = np.searchsorted(np.sort(submitted), submitted, side="left")
    finished = np.searchsorted(np.sort(done["finished"].to_numpy(dtype=float)), submitted,
                               side="right")  # fmt: skip
    free = (before - finished) < workers
    return np.asarray(done["wait_s"].to_numpy(dtype=float)[free], dtype=float)


def _rel(t: float | None, t0: float) -> float:
    return t - t0 if t is not None else np.nan
