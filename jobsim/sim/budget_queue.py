"""Experiment E7 on the real queue: retries held to a budget by a :class:`jobsim.RateLimit`.

:mod:`jobsim.sim.budget` models a retry budget in pure Python. Here the same storm runs on a
real :class:`jobsim.JobQueue` with thread workers: each request is a job of task
``e7_call``, submitted to start at its arrival time (a scheduled job); an attempt inside the
outage (or failing its seeded draw) completes with ``{"ok": false}`` and, while retries are
left, submits its retry after the storm's backoff as a job of task ``e7_retry``. The budget
is the queue's rate limit on ``e7_retry``: ``RateLimit(per_s=ratio * rate_per_s,
burst=max_tokens)``, enforced in Redis across every worker.

The difference from the model is the point of running it: the model *refuses* a retry that
finds its bucket empty; the rate limit makes it *wait* (parked, not blocking first
attempts), so during the outage the dependency sees at most ``(1 + ratio)x`` its load, and
after it the backlog of retries drains at ``ratio * rate_per_s`` instead of being dropped.

Example:
    >>> from jobsim.sim.budget import RetryBudget, Storm, load
    >>> storm = Storm(rate_per_s=20, duration_s=1, outage=(0.2, 0.6), max_retries=2,
    ...               budget=RetryBudget(ratio=0.5, max_tokens=2), seed=1)
    >>> attempts = simulate_on_queue(storm)                        # doctest: +SKIP
    >>> load(attempts, rate_per_s=storm.rate_per_s)                # doctest: +SKIP
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd
import redis

from jobsim.config import QueueConfig
from jobsim.connection import connect, server_time_s
from jobsim.limits import RateLimit
from jobsim.pool import WorkerPool
from jobsim.queue import JobQueue
from jobsim.requests import JobRequest
from jobsim.sim.budget import Storm
from jobsim.tasks import task

CALL_TASK = "e7_call"
RETRY_TASK = "e7_retry"
COLUMNS = ["t_s", "job", "number", "ok", "outcome"]


@dataclass(frozen=True)
class _Run:
    queue: JobQueue
    storm: Storm
    t0_s: float  # Redis time of storm time 0


_RUNS: dict[str, _Run] = {}
_LOCK = threading.Lock()


def _attempt(payload: dict[str, Any]) -> dict[str, Any]:
    """One attempt at the dependency; submits the retry when it fails and retries remain."""
    run = _RUNS[payload["run"]]
    storm, number = run.storm, int(payload["number"])
    t = server_time_s(run.queue.client) - run.t0_s
    draw = random.Random(f"{storm.seed}:{payload['job']}:{number}")
    start, end = storm.outage
    ok = not (start <= t < end) and draw.random() >= storm.fail_probability
    if not ok and number <= storm.max_retries:
        delay = storm.policy.delay_s(number, previous_s=payload.get("delay_s"), rng=draw)
        retry = {**payload, "number": number + 1, "delay_s": delay}
        run.queue.submit(RETRY_TASK, retry, delay_s=delay if delay > 0 else None, max_retries=0)
    return {"ok": ok}


task(CALL_TASK)(_attempt)
task(RETRY_TASK)(_attempt)


def retry_limit(storm: Storm) -> RateLimit | None:
    """The rate limit standing in for the storm's retry budget (``None`` without one)."""
    budget = storm.budget
    if budget is None:
        return None
    return RateLimit(per_s=budget.ratio * storm.rate_per_s, burst=max(1, int(budget.max_tokens)))


def simulate_on_queue(
    storm: Storm,
    *,
    client: redis.Redis | None = None,
    workers: int = 8,
    timeout_s: float = 120.0,
) -> pd.DataFrame:
    """Run the storm on a real queue (embedded fakeredis unless ``client`` is given).

    It runs in real time: ``duration_s`` plus the retries' backoff and, with a budget,
    the backlog's drain at ``ratio * rate_per_s``. Keep storms short (a few seconds).

    Returns:
        One row per attempt, in time order, with :func:`jobsim.sim.budget.simulate`'s
        columns: ``t_s`` (storm seconds of Redis time at the lease), ``job``, ``number``,
        ``ok`` and ``outcome`` (``ok``, ``retry`` or ``dead``; a retry is never refused
        here, it waits for a token).

    Raises:
        DrainTimeoutError: the run had not finished after ``timeout_s``.
    """
    client = client or connect()
    limit = retry_limit(storm)
    name = f"e7-{uuid.uuid4().hex[:8]}"
    queue = JobQueue(client, name, QueueConfig(rate_limits={RETRY_TASK: limit} if limit else {}))
    rng = random.Random(storm.seed)
    arrivals, t = [], rng.expovariate(storm.rate_per_s)
    while t < storm.duration_s:
        arrivals.append(t)
        t += rng.expovariate(storm.rate_per_s)
    # 0.2 s to submit before the first arrival; on the µs grid, so lease times stay exact
    t0_s = round((server_time_s(client) + 0.2) * 1e6) / 1e6
    with _LOCK:
        _RUNS[name] = _Run(queue, storm, t0_s)
    try:
        queue.submit_many(
            JobRequest(
                CALL_TASK, {"run": name, "job": i, "number": 1}, run_at=t0_s + t, max_retries=0
            )
            for i, t in enumerate(arrivals)
        )
        with WorkerPool(queue, concurrency=workers, prefetch_s=0):
            queue.wait_until_drained(timeout_s=timeout_s)
        return _frame(queue, storm, t0_s)
    finally:
        with _LOCK:
            del _RUNS[name]
        queue.delete()


def _frame(queue: JobQueue, storm: Storm, t0_s: float) -> pd.DataFrame:
    ids = queue.job_ids("completed", limit=10**9)
    rows = []
    for job in queue.get_many(ids):
        leased = job.attempt_log[-1].leased_at
        ok = bool(job.result and job.result.get("ok"))
        number = int(job.payload["number"])
        outcome = "ok" if ok else ("retry" if number <= storm.max_retries else "dead")
        t_s = (leased if leased is not None else job.submitted_at) - t0_s
        rows.append({"t_s": t_s, "job": job.payload["job"], "number": number, "ok": ok,
                     "outcome": outcome})  # fmt: skip
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values("t_s", kind="stable").reset_index(drop=True)
