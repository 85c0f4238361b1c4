"""The virtual backend's main event loop: priorities, aging, retries and every per-job
fault (poison ``fail``/``fail_once``, failure draws, a slow worker, latency spikes), with
no timed faults. One loop on purpose: a call per event costs about twice the speed.

A free worker takes the best ready job; among several idle workers the one idle longest
takes it (Redis wakes the clients blocked on the queue's wake list in the order they
blocked; ties go to the lowest index). A due retry is promoted by a ``DEQUEUE``, as in the
queue: at once if a worker is idle (it is blocked with the due time as its timeout), else
at the next attempt's end, so a job submitted in between goes ahead of it.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable

import numpy as np

from jobsim.config import QueueConfig
from jobsim.sim.faults import FaultPlan
from jobsim.sim.job import attempt_failure, fail_probability, job_id
from jobsim.sim.setup import Setup
from jobsim.sim.virtual.trace import MAX_SAMPLES, Trace, sample_period
from jobsim.sim.workload import Workload

INF = math.inf
Draws = tuple[np.ndarray, np.ndarray, np.ndarray]
Rule = Callable[[int, int, int, float], tuple[float, str | None]]


def simulate(  # noqa: C901  (one loop on purpose, see the module docstring)
    workload: Workload, draws: Draws, faults: FaultPlan, setup: Setup
) -> Trace:
    """Run the event loop in model seconds and return its :class:`Trace`."""
    arrivals_np, services_np, priorities_np = draws
    arrivals = arrivals_np.tolist()
    services = services_np.tolist()
    n = len(arrivals)
    band_us = QueueConfig(aging_s=setup.aging_s).band_us
    penalty = (priorities_np.astype(float) * band_us).tolist()  # priority * band, µs
    us_per_model_s = 1e6  # the queue's clock, in model µs (the real queue's is wall µs)
    max_attempts = workload.max_retries + 1
    policy = setup.retry
    no_backoff = policy.kind == "fixed" and policy.base_s == 0.0
    special = attempt_rule(workload, faults, services)
    seed = workload.seed
    rngs = [random.Random(f"{seed}:{w}") for w in range(setup.workers)]  # as the workers'

    attempts = [0] * n
    previous_s: list[float | None] = [None] * n  # the job's last backoff, model seconds
    finished = [INF] * n
    dead: set[int] = set()
    a_job: list[int] = []
    a_num: list[int] = []
    a_worker: list[int] = []
    a_start: list[float] = []
    a_end: list[float] = []
    a_error: list[str | None] = []

    ready: list[tuple[float, int]] = []  # (queue score in µs, job)
    free = [(0.0, w) for w in range(setup.workers)]  # (idle since, worker): a heap
    busy: list[tuple[float, int, int, int]] = []  # (end, worker, job, 0 done/1 retry/2 dead)
    due: list[tuple[float, int, int]] = []  # (retry due, order, job)
    waiting: list[int] = []  # due retries no DEQUEUE has promoted yet (every worker busy)
    seq = -INF  # the queue's strictly increasing clock, µs
    order = 0
    in_system = 0
    period = sample_period(arrivals[-1] if n else 0.0, math.fsum(services), setup.workers)
    next_sample = 0.0
    samples: list[tuple[float, int]] = []
    heappush, heappop = heapq.heappush, heapq.heappop
    i, now = 0, 0.0
    while True:
        ta = arrivals[i] if i < n else INF
        tb = busy[0][0] if busy else INF
        tr = due[0][0] if due else INF
        t = ta if ta < tb else tb
        if tr < t:
            t = tr
        if t > now:
            if free and ready:  # every event at `now` is in: free workers take the best jobs
                while free and ready:
                    j = heappop(ready)[1]
                    w = heappop(free)[1]
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
            if t == INF:
                break
            while next_sample < t:
                samples.append((next_sample, in_system))
                next_sample += period
                if len(samples) >= MAX_SAMPLES:
                    samples = samples[::2]
                    period *= 2
            now = t
        if tb == t:  # an attempt ends: its worker is free
            _, w, j, outcome = heappop(busy)
            heappush(free, (t, w))
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
                    heappush(due, (t + previous_s[j], order, j))  # type: ignore[operator]
            else:
                finished[j] = t
                in_system -= 1
                dead.add(j)
            if waiting:  # this worker's DEQUEUE promotes the retries that came due meanwhile
                for j in waiting:
                    x = t * us_per_model_s
                    seq = x if x > seq + 1 else seq + 1
                    heappush(ready, (seq - penalty[j], j))
                waiting.clear()
        elif tr == t:  # a retry is due: queued again, behind what is already queued
            j = heappop(due)[2]
            if not free:  # no idle worker to wake: the next DEQUEUE (a job's end) promotes it
                waiting.append(j)
                continue
            x = t * us_per_model_s
            seq = x if x > seq + 1 else seq + 1
            heappush(ready, (seq - penalty[j], j))
        else:  # an arrival: submitted
            x = t * us_per_model_s
            seq = x if x > seq + 1 else seq + 1
            heappush(ready, (seq - penalty[i], i))
            in_system += 1
            i += 1
    samples.append((now, in_system))
    return Trace(
        job=a_job, number=a_num, worker=a_worker, start=a_start, end=a_end, error=a_error,
        finished=finished, dead=dead, samples=samples,
    )  # fmt: skip


def attempt_rule(workload: Workload, faults: FaultPlan, services: list[float]) -> Rule | None:
    """How long attempt ``k`` of job ``j`` on worker ``w`` started at model time ``now``
    takes, and why it fails (None: it succeeds), as the ``sim`` task decides it; None
    when every attempt takes its planned service time and succeeds."""
    p_fail = fail_probability(workload.fail_probability, faults)
    poison = {j: mode for j, mode in faults.poison.items() if mode != "crash"}
    decide = p_fail > 0 or bool(poison)
    seed = workload.seed
    slow = faults.slow_worker_factor
    spikes = [(s.start_s, s.end_s, s.extra_s) for s in faults.spikes]
    outages = faults.outages
    decide = decide or bool(outages)
    if not (decide or slow > 1 or spikes):
        return None

    def rule(j: int, k: int, w: int, now: float) -> tuple[float, str | None]:
        s = services[j]
        if w == 0 and slow > 1:  # the pool's first worker is the slow one
            s *= slow
        s += sum(extra for start, end, extra in spikes if start <= now <= end)
        if not decide:
            return s, None
        down = any(outage.covers(now) for outage in outages)
        why = attempt_failure(
            job_id(j), k, poison=poison.get(j), fail_probability=p_fail, seed=seed, in_outage=down
        )
        return s, None if why is None else f"SimulatedFailure: {why}"  # as the worker logs it

    return rule
