"""The virtual backend: the queue's semantics in a discrete-event engine (no threads, no
Redis, no wall clock), so a run is exact, reproducible and fast.

It reads the same draws as the real runner (:meth:`Workload.draws`), decides each attempt
with the same code as the simulator's task (:func:`jobsim.sim.job.attempt_failure`), draws
backoffs with the same :class:`~jobsim.retry.RetryPolicy` and the same per-worker seeded
generators, and orders the ready jobs by the queue's own score
(``seq - priority * band_us``, :attr:`jobsim.config.QueueConfig.band_us`). What the real
queue decides in Lua is mirrored here and pinned by the conformance tests
(``tests/test_virtual.py``); docs/virtual.md lists what is and is not modelled.

The engine keeps model seconds; :class:`~jobsim.sim.setup.Setup`'s durations (retry
delays, aging) are wall seconds on every backend, so they are divided by the workload's
``time_scale`` here, and the frames come out in wall seconds (model x ``time_scale``), as
the real runner's do, so summaries and charts read them unchanged.

Example:
    >>> from jobsim.sim.workload import Workload
    >>> result = run_virtual(Workload(jobs=100, seed=1), setup=Setup(workers=10))
    >>> result.verdict.completed
    100
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from jobsim.config import QueueConfig
from jobsim.errors import InvalidInputError
from jobsim.sim.checker import Verdict
from jobsim.sim.faults import FaultPlan
from jobsim.sim.job import attempt_failure, fail_probability, job_id, job_ids
from jobsim.sim.result import RunResult
from jobsim.sim.setup import Setup
from jobsim.sim.summary import summarize
from jobsim.sim.timing import ATTEMPT_COLUMNS, JOB_COLUMNS
from jobsim.sim.workload import Workload

POOL_ID = "virtual"
"""Worker ids on the virtual backend are ``virtual-<index>``."""

SAMPLES = 20_000
"""About how many (time, jobs in system) samples the engine takes of its own count."""

_INF = math.inf


def unsupported(faults: FaultPlan, setup: Setup) -> list[str]:
    """What in ``faults`` and ``setup`` the virtual engine does not model (yet)."""
    missing = []
    if any(mode == "crash" for mode in faults.poison.values()):
        missing.append("poison 'crash'")
    if faults.worker_crashes:
        missing.append("worker_crashes")
    if faults.redis_drops:
        missing.append("redis_drops")
    if faults.redis_pauses:
        missing.append("redis_pauses")
    if faults.redis_restart is not None:
        missing.append("redis_restart")
    if setup.job_timeout_s is not None:
        missing.append("job_timeout_s")
    return missing


def run_virtual(
    workload: Workload,
    faults: FaultPlan | None = None,
    setup: Setup | None = None,
    *,
    progress: bool | Callable[[int, int], None] = False,
) -> RunResult:
    """Run ``workload`` on the virtual engine: the same :class:`RunResult` as the real queue.

    Raises:
        InvalidInputError: for a fault or setting the engine does not model (named).
    """
    faults = faults or FaultPlan()
    setup = setup or Setup(backend="virtual")
    missing = unsupported(faults, setup)
    if missing:
        raise InvalidInputError(
            f"the virtual backend does not model {', '.join(missing)} yet; "
            "run it on a real backend (embedded, local or a redis:// URL)",
            field="backend",
            value="virtual",
        )
    if setup.workers < 1:
        raise InvalidInputError("workers must be >= 1", field="workers", value=setup.workers)
    began = time.perf_counter()
    draws = workload.draws()
    log, samples, finished, dead = _simulate(workload, draws, faults, setup)
    jobs, attempts = _frames(workload, draws, log, finished, dead)
    n = workload.jobs
    verdict = Verdict(
        submitted=n,
        completed=n - len(dead),
        dead_lettered=len(dead),
        lost=0,
        unexpected=0,
        misplaced=0,
        stranded=0,
        duplicates=0,
        redelivered=0,
    )
    wall_s = time.perf_counter() - began
    summary = summarize(jobs, attempts, verdict, workload, setup, faults, wall_s, samples, ())
    if callable(progress):
        progress(n, n)
    return RunResult(workload, faults, setup, jobs, attempts, verdict, summary, ())


_Draws = tuple[np.ndarray, np.ndarray, np.ndarray]
_Log = tuple[list[int], list[int], list[int], list[float], list[float], list[str | None]]


def _simulate(  # noqa: C901  (one loop on purpose: a call per event costs ~2x the speed)
    workload: Workload, draws: _Draws, faults: FaultPlan, setup: Setup
) -> tuple[_Log, list[tuple[float, int]], list[float], set[int]]:
    """The event loop, in model seconds. Returns the attempt log (job, number, worker,
    start, end, error; end order is start order per worker), the samples (wall seconds,
    jobs in system), each job's finish time and the dead-lettered jobs."""
    scale = workload.time_scale
    arrivals_np, services_np, priorities_np = draws
    arrivals = arrivals_np.tolist()
    services = services_np.tolist()
    n = len(arrivals)
    band_us = QueueConfig(aging_s=setup.aging_s).band_us
    penalty = (priorities_np.astype(float) * band_us).tolist()  # priority * band, µs
    us_per_model_s = scale * 1e6
    max_attempts = workload.max_retries + 1
    policy = setup.retry
    no_backoff = policy.kind == "fixed" and policy.base_s == 0.0
    special = _attempt_rule(workload, faults, services)
    seed = workload.seed
    rngs = [random.Random(f"{seed}:{w}") for w in range(setup.workers)]  # as the workers'

    attempts = [0] * n
    previous_s: list[float | None] = [None] * n  # the job's last backoff, wall seconds
    finished = [_INF] * n
    dead: set[int] = set()
    a_job: list[int] = []
    a_num: list[int] = []
    a_worker: list[int] = []
    a_start: list[float] = []
    a_end: list[float] = []
    a_error: list[str | None] = []

    ready: list[tuple[float, int]] = []  # (queue score in µs, job)
    free = list(range(setup.workers))  # a heap: the lowest idle worker takes the next job
    busy: list[tuple[float, int, int, int]] = []  # (end, worker, job, 0 done/1 retry/2 dead)
    due: list[tuple[float, int, int]] = []  # (retry due, order, job)
    seq = -_INF  # the queue's strictly increasing clock, µs
    order = 0
    in_system = 0
    period = (arrivals[-1] if n and arrivals[-1] > 0 else 1.0) / SAMPLES
    next_sample = 0.0
    samples: list[tuple[float, int]] = []
    heappush, heappop = heapq.heappush, heapq.heappop
    i, now = 0, 0.0
    while True:
        ta = arrivals[i] if i < n else _INF
        tb = busy[0][0] if busy else _INF
        tr = due[0][0] if due else _INF
        t = ta if ta < tb else tb
        if tr < t:
            t = tr
        if t > now:
            if free and ready:  # every event at `now` is in: free workers take the best jobs
                while free and ready:
                    j = heappop(ready)[1]
                    w = heappop(free)
                    k = attempts[j] = attempts[j] + 1
                    if special is None:
                        s, error = services[j], None
                    else:
                        s, error = special(j, k, w, now)
                    end_t = now + s
                    a_job.append(j)
                    a_num.append(k)
                    a_worker.append(w)
                    a_start.append(now)
                    a_end.append(end_t)
                    if error is None:
                        a_error.append(None)
                        heappush(busy, (end_t, w, j, 0))
                        continue
                    a_error.append(error)
                    # a worker draws a backoff for every retryable failure, even the last
                    delay = policy.delay_s(k, previous_s=previous_s[j], rng=rngs[w])
                    previous_s[j] = round(delay * 1e6) / 1e6  # the queue keeps µs
                    heappush(busy, (end_t, w, j, 1 if k < max_attempts else 2))
                continue
            if t == _INF:
                break
            while next_sample < t:
                samples.append((next_sample * scale, in_system))
                next_sample += period
            now = t
        if tb == t:  # an attempt ends: its worker is free
            _, w, j, outcome = heappop(busy)
            heappush(free, w)
            if outcome == 0:
                finished[j] = t
                in_system -= 1
            elif outcome == 1:
                if no_backoff:
                    x = t * us_per_model_s
                    seq = x if x > seq + 1 else seq + 1
                    heappush(ready, (seq - penalty[j], j))
                else:
                    order += 1
                    heappush(due, (t + previous_s[j] / scale, order, j))  # type: ignore[operator]
            else:
                finished[j] = t
                in_system -= 1
                dead.add(j)
        elif tr == t:  # a retry is due: queued again, behind what is already queued
            j = heappop(due)[2]
            x = t * us_per_model_s
            seq = x if x > seq + 1 else seq + 1
            heappush(ready, (seq - penalty[j], j))
        else:  # an arrival: submitted
            x = t * us_per_model_s
            seq = x if x > seq + 1 else seq + 1
            heappush(ready, (seq - penalty[i], i))
            in_system += 1
            i += 1
    samples.append((now * scale, in_system))
    log = (a_job, a_num, a_worker, a_start, a_end, a_error)
    return log, samples, finished, dead


def _attempt_rule(
    workload: Workload, faults: FaultPlan, services: list[float]
) -> Callable[[int, int, int, float], tuple[float, str | None]] | None:
    """How long attempt ``k`` of job ``j`` on worker ``w`` started at model time ``now``
    takes, and why it fails (None: it succeeds), as the ``sim`` task decides it; None
    when every attempt takes its planned service time and succeeds."""
    p_fail = fail_probability(workload.fail_probability, faults)
    poison = dict(faults.poison)
    decide = p_fail > 0 or bool(poison)
    seed = workload.seed
    slow = faults.slow_worker_factor
    spikes = [(s.start_s, s.end_s, s.extra_s) for s in faults.spikes]
    if not (decide or slow > 1 or spikes):
        return None

    def rule(j: int, k: int, w: int, now: float) -> tuple[float, str | None]:
        s = services[j]
        if w == 0 and slow > 1:  # the pool's first worker is the slow one
            s *= slow
        s += sum(extra for start, end, extra in spikes if start <= now <= end)
        if not decide:
            return s, None
        why = attempt_failure(
            job_id(j), k, poison=poison.get(j), fail_probability=p_fail, seed=seed
        )
        return s, None if why is None else f"SimulatedFailure: {why}"  # as the worker logs it

    return rule


def _frames(
    workload: Workload, draws: _Draws, log: _Log, finished: list[float], dead: set[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The jobs and attempts frames, in wall seconds, with the real runner's columns."""
    scale = workload.time_scale
    n = workload.jobs
    times, _, priorities = draws
    a_job, a_num, a_worker, a_start, a_end, a_error = log
    job = np.asarray(a_job, dtype=np.int64)
    number = np.asarray(a_num, dtype=np.int64)
    by_job = np.lexsort((number, job))  # the real frame lists attempts job by job
    job, number = job[by_job], number[by_job]
    worker = np.asarray(a_worker, dtype=np.int64)[by_job]
    start = np.asarray(a_start)[by_job] * scale
    end = np.asarray(a_end)[by_job] * scale
    error = np.asarray(a_error, dtype=object)[by_job]
    ok = np.array([e is None for e in a_error], dtype=bool)[by_job]
    last = number == np.bincount(job, minlength=n)[job]
    dead_mask = np.zeros(n, dtype=bool)
    dead_mask[list(dead)] = True
    outcome = np.where(
        ok,
        "completed",
        np.where(last & dead_mask[job], "failed", "retry"),
    )
    names = np.array([f"{POOL_ID}-{w}" for w in range(int(worker.max()) + 1)], dtype=object)
    ids = np.array(job_ids(n), dtype=object)
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
    first = np.flatnonzero(number == 1)  # one per job, in job order
    lasts = np.flatnonzero(last)
    submitted = np.asarray(times, dtype=float) * scale
    started = start[first]
    done = np.asarray(finished) * scale
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
            "attempts": number[lasts],
            "outcome": np.where(dead_mask, "failed", "completed"),
            "worker": names[worker[lasts]],
            "redeliveries": np.zeros(n, dtype=np.int64),
            "fenced": np.zeros(n, dtype=np.int64),
            "duplicate": np.zeros(n, dtype=bool),
        },
        columns=JOB_COLUMNS,
    )
    return jobs, attempts
