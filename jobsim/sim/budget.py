"""A model of a retry budget (E7): the formula's expectation, in pure Python (no Redis, no
workers, instant service). On the real queue the budget is a per-task
:class:`jobsim.RateLimit` on the retry task; :mod:`jobsim.sim.budget_queue` runs the same
:class:`Storm` there, where a retry without a token waits instead of being refused.

A budget is a token bucket shared by every client: each first attempt deposits ``ratio``
tokens (up to ``max_tokens``), each retry must take one whole token, and a failure that
finds the bucket empty gives up at once instead of retrying. Under a sustained failure,
per-job backoff only delays retries: each job still makes ``r + 1`` attempts, so the
dependency sees ``(r + 1)x`` its normal load. The budget holds that near ``(1 + ratio)x``.

Example:
    >>> storm = Storm(rate_per_s=20, duration_s=10, outage=(0, 1e9), seed=1)
    >>> attempts = simulate(storm)
    >>> len(attempts) / attempts["job"].nunique()  # r = 3: every job makes 4 attempts
    4.0
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from jobsim import theory
from jobsim.errors import InvalidInputError
from jobsim.retry import RetryPolicy


@dataclass(frozen=True, kw_only=True)
class RetryBudget:
    """A token bucket for retries, shared by every client.

    Args:
        ratio: tokens deposited per first attempt (0.1: retries may add 10% to the load).
        max_tokens: the bucket's size, which is also its content at the start.
    """

    ratio: float = 0.1
    max_tokens: float = 10.0

    def __post_init__(self) -> None:
        if not self.ratio >= 0:
            raise InvalidInputError("ratio must be >= 0", field="ratio", value=self.ratio)
        if not self.max_tokens >= 0:
            raise InvalidInputError(
                "max_tokens must be >= 0", field="max_tokens", value=self.max_tokens
            )


@dataclass(frozen=True, kw_only=True)
class Storm:
    """Requests arriving at a dependency that fails for a while.

    Args:
        rate_per_s: Poisson arrival rate of new requests (first attempts).
        duration_s: how long new requests keep arriving.
        outage: (start, end) seconds during which every attempt fails.
        fail_probability: chance that an attempt outside the outage fails.
        max_retries: retries per request (``r``).
        policy: backoff between attempts.
        budget: a retry budget, or None for per-job backoff alone.
        seed: seeds arrivals, failures and jitter.
    """

    rate_per_s: float = 50.0
    duration_s: float = 30.0
    outage: tuple[float, float] = (10.0, 20.0)
    fail_probability: float = 0.0
    max_retries: int = 3
    policy: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(kind="full", base_s=0.5, cap_s=8.0)
    )
    budget: RetryBudget | None = None
    seed: int = 0


def simulate(storm: Storm) -> pd.DataFrame:
    """Run the model.

    Returns:
        One row per attempt, in time order: ``t_s``, ``job``, ``number``, ``ok`` and
        ``outcome``: ``ok``, ``retry`` (failed, retried later), ``refused`` (failed, the
        budget had no token), ``dead`` (failed its last allowed attempt).
    """
    rng = random.Random(storm.seed)
    events: list[tuple[float, int, int, float | None]] = []  # t, job, number, last delay
    t, job = rng.expovariate(storm.rate_per_s), 0
    while t < storm.duration_s:
        heapq.heappush(events, (t, job, 1, None))
        t, job = t + rng.expovariate(storm.rate_per_s), job + 1
    budget = storm.budget
    tokens = budget.max_tokens if budget else 0.0
    start, end = storm.outage
    rows = []
    while events:
        t, job, number, previous = heapq.heappop(events)
        if number == 1 and budget is not None:
            tokens = min(budget.max_tokens, tokens + budget.ratio)
        ok = not (start <= t < end) and rng.random() >= storm.fail_probability
        outcome = "ok"
        if not ok and number > storm.max_retries:
            outcome = "dead"
        elif not ok and budget is not None and tokens < 1:
            outcome = "refused"
        elif not ok:
            tokens -= 1 if budget is not None else 0
            delay = storm.policy.delay_s(number, previous_s=previous, rng=rng)
            heapq.heappush(events, (t + delay, job, number + 1, delay))
            outcome = "retry"
        rows.append({"t_s": t, "job": job, "number": number, "ok": ok, "outcome": outcome})
    return pd.DataFrame(rows, columns=["t_s", "job", "number", "ok", "outcome"])


def load(attempts: pd.DataFrame, *, rate_per_s: float, bin_s: float = 1.0) -> pd.DataFrame:
    """Attempts per second over time, and the load multiplier (attempts over new requests).

    Returns:
        Columns ``t`` (bin start, seconds), ``attempts_per_s`` and ``multiplier``.
    """
    horizon = float(attempts["t_s"].max()) if len(attempts) else 0.0
    edges = np.arange(0.0, horizon + bin_s, bin_s)
    counts, _ = np.histogram(attempts["t_s"].to_numpy(dtype=float), edges)
    per_s = counts / bin_s
    return pd.DataFrame(
        {"t": edges[:-1], "attempts_per_s": per_s, "multiplier": per_s / rate_per_s}
    )


def expected_multiplier(
    fail_probability: float, max_retries: int, budget: RetryBudget | None = None
) -> float:
    """Steady-state attempts per request: ``E[A]`` with backoff alone, ``min(E[A], 1 + ratio)``
    with a budget (once the bucket has drained, retries come only from its deposits)."""
    attempts = theory.expected_attempts(fail_probability, max_retries)
    return attempts if budget is None else min(attempts, 1.0 + budget.ratio)
