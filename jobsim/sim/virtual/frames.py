"""The jobs and attempts frames of a virtual run, built once at the end from its trace,
with the real runner's columns and types, in model seconds."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from jobsim.sim.job import job_ids
from jobsim.sim.timing import ATTEMPT_COLUMNS, JOB_COLUMNS
from jobsim.sim.virtual.engine import Draws
from jobsim.sim.virtual.trace import Trace
from jobsim.sim.workload import Workload

POOL_ID = "virtual"
"""Worker ids on the virtual backend are ``virtual-<index>``."""

_ATTEMPT_OUTCOMES = np.array(["completed", "retry", "failed"], dtype=object)
_JOB_OUTCOMES = np.array(["completed", "failed", "cancelled"], dtype=object)


@lru_cache(maxsize=2)
def _ids(n: int) -> np.ndarray:
    """The job ids of a plan of ``n`` jobs (kept: replications of one size share them;
    read only, every frame copies what it takes)."""
    ids = np.array(job_ids(n), dtype=object)
    ids.flags.writeable = False
    return ids


def job_codes(n: int, dead: np.ndarray, cancelled: set[int]) -> np.ndarray:
    """Each job's outcome as an index of ``completed failed cancelled``."""
    code = dead.astype(np.int64)
    code[list(cancelled)] = 2
    return code


def frames(workload: Workload, draws: Draws, trace: Trace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The jobs and attempts frames of ``trace``."""
    n = workload.jobs
    times, _, priorities = draws
    job = np.asarray(trace.job, dtype=np.int64)
    number = np.asarray(trace.number, dtype=np.int64)
    by_job = np.lexsort((number, job))  # the real frame lists attempts job by job
    job, number = job[by_job], number[by_job]
    worker = np.asarray(trace.worker, dtype=np.int64)[by_job]
    start = np.asarray(trace.start, dtype=float)[by_job]
    end = np.asarray(trace.end, dtype=float)[by_job]
    error = np.asarray(trace.error, dtype=object)[by_job]
    last = number == np.bincount(job, minlength=n)[job]
    dead_mask = np.zeros(n, dtype=bool)
    dead_mask[list(trace.dead)] = True
    if trace.outcome is None:
        failed = np.fromiter((e is not None for e in trace.error), bool, len(trace.error))
        code = failed[by_job].astype(np.int64)  # 0 completed, 1 retry, 2 failed
        code[failed[by_job] & last & dead_mask[job]] = 2
        outcome = _ATTEMPT_OUTCOMES[code]
    else:
        outcome = np.asarray(trace.outcome, dtype=object)[by_job]
    names = np.array([f"{POOL_ID}-{w}" for w in range(int(worker.max()) + 1)], dtype=object)
    ids = _ids(n)
    attempts = pd.DataFrame(
        {
            "job_id": ids[job],
            "number": number,
            "worker": names[worker],
            "started": start,
            "ended": end,
            "service_s": end - start,
            "outcome": outcome,
            "error": error,
        },
        columns=ATTEMPT_COLUMNS,
    )
    first = np.flatnonzero(number == 1)
    lasts = np.flatnonzero(last)
    submitted = np.asarray(times if trace.submitted is None else trace.submitted, float)
    started = np.full(n, np.nan)
    started[job[first]] = start[first]
    tries = np.zeros(n, dtype=np.int64)
    tries[job[lasts]] = number[lasts]
    last_worker = np.full(n, None, dtype=object)
    last_worker[job[lasts]] = names[worker[lasts]]
    done = np.asarray(trace.finished, dtype=float)
    fenced = np.zeros(n, dtype=np.int64) if trace.fenced is None else np.asarray(trace.fenced)
    redeliveries = (
        np.zeros(n, dtype=np.int64)
        if trace.redeliveries is None
        else np.asarray(trace.redeliveries, dtype=np.int64)
    )
    jobs = pd.DataFrame(
        {
            "job_id": ids,
            "index": np.arange(n, dtype=np.int64),
            "priority": np.asarray(priorities, dtype=np.int64),
            "submitted": submitted,
            "started": started,
            "finished": done,
            "wait_s": started - submitted,
            "service_s": np.bincount(job, weights=end - start, minlength=n),
            "sojourn_s": done - submitted,
            "attempts": tries,
            "outcome": _JOB_OUTCOMES[job_codes(n, dead_mask, trace.cancelled)],
            "worker": last_worker,
            "redeliveries": redeliveries,
            "fenced": fenced.astype(np.int64),
            "duplicate": fenced > 0,
        },
        columns=JOB_COLUMNS,
    )
    if trace.lost:  # a restart without persistence: the real run has no record of them
        kept = np.ones(n, dtype=bool)
        kept[list(trace.lost)] = False
        jobs = jobs[kept].reset_index(drop=True)
        attempts = attempts[kept[job]].reset_index(drop=True)
    return jobs, attempts
