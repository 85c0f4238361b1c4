"""Seeded workloads: when jobs arrive, how long they take, their priorities and failures.

A :class:`Workload` is a frozen description; :meth:`Workload.plan` turns it into the same
list of :class:`PlannedJob` for the same seed, every time. Times are in model seconds;
``time_scale`` maps them to wall-clock seconds (0.1 runs an experiment ten times faster),
so rates and the theory are stated in model units and the queue runs scaled.

Example:
    >>> w = Workload(jobs=100, arrival=Poisson(rate_per_s=8), service=Exponential(mean_s=1),
    ...              time_scale=0.02, seed=1)
    >>> w.plan() == w.plan()
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from jobsim.errors import InvalidInputError
from jobsim.models import PRIORITY_MAX, PRIORITY_MIN

# --- arrival processes --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Poisson:
    """Exponential inter-arrival times (squared coefficient of variation 1)."""

    rate_per_s: float
    scv: float = 1.0

    def __post_init__(self) -> None:
        _require_positive("rate_per_s", self.rate_per_s)

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Arrival times of ``n`` jobs, model seconds from the start."""
        return np.cumsum(rng.exponential(1.0 / self.rate_per_s, n))


@dataclass(frozen=True, kw_only=True)
class Constant:
    """Evenly spaced arrivals (scv 0)."""

    rate_per_s: float

    def __post_init__(self) -> None:
        _require_positive("rate_per_s", self.rate_per_s)

    scv: float = 0.0

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Arrival times: 1/rate, 2/rate, ..."""
        return np.arange(1, n + 1) / self.rate_per_s


@dataclass(frozen=True, kw_only=True)
class Bursty:
    """On/off: Poisson arrivals at ``on_rate_per_s`` during ``on_s``, none during ``off_s``."""

    on_rate_per_s: float
    on_s: float
    off_s: float

    @property
    def rate_per_s(self) -> float:
        """Long-run mean arrival rate."""
        return self.on_rate_per_s * self.on_s / (self.on_s + self.off_s)

    @property
    def scv(self) -> float:
        """NaN: on/off arrivals are not a renewal process, so no formula takes them."""
        return math.nan

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Poisson arrivals inside the on-periods, skipping the off-periods."""
        busy = np.cumsum(rng.exponential(1.0 / self.on_rate_per_s, n))  # time spent "on"
        periods = np.floor(busy / self.on_s)
        return busy + periods * self.off_s


@dataclass(frozen=True, kw_only=True)
class Replay:
    """Arrivals at the given times (model seconds), e.g. from a trace."""

    times_s: tuple[float, ...]

    @property
    def rate_per_s(self) -> float:
        """Mean rate over the trace."""
        span = max(self.times_s) if self.times_s else 0.0
        return len(self.times_s) / span if span > 0 else math.inf

    @property
    def scv(self) -> float:
        """The trace's inter-arrival scv."""
        gaps = np.diff(np.concatenate([[0.0], np.sort(self.times_s)]))
        return float(gaps.var() / gaps.mean() ** 2) if len(gaps) > 1 and gaps.mean() > 0 else 0.0

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The first ``n`` trace times, sorted."""
        if n > len(self.times_s):
            raise InvalidInputError(
                f"the trace has {len(self.times_s)} arrivals, fewer than jobs={n}",
                field="jobs",
                value=n,
            )
        return np.sort(np.asarray(self.times_s[:n], dtype=float))


@dataclass(frozen=True, kw_only=True)
class AllAtOnce:
    """Every job submitted at time 0 (a backlog to drain)."""

    rate_per_s: float = math.inf
    scv: float = math.nan

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """All zeros."""
        return np.zeros(n)


Arrival = Poisson | Constant | Bursty | Replay | AllAtOnce

# --- service-time distributions -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Fixed:
    """Every job takes ``seconds`` (scv 0: M/D/c)."""

    seconds: float

    @property
    def mean_s(self) -> float:
        """Mean service time."""
        return self.seconds

    @property
    def scv(self) -> float:
        """Squared coefficient of variation."""
        return 0.0

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` service times."""
        return np.full(n, self.seconds)


@dataclass(frozen=True, kw_only=True)
class Exponential:
    """Exponential service times (scv 1: M/M/c)."""

    mean_s: float

    @property
    def scv(self) -> float:
        """Squared coefficient of variation."""
        return 1.0

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` service times."""
        return rng.exponential(self.mean_s, n)


@dataclass(frozen=True, kw_only=True)
class Lognormal:
    """Lognormal service times with the given mean and scv (heavy-ish tail)."""

    mean_s: float
    scv: float = 4.0

    def __post_init__(self) -> None:
        _require_positive("mean_s", self.mean_s)
        _require_positive("scv", self.scv)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` service times."""
        sigma2 = math.log1p(self.scv)
        mu = math.log(self.mean_s) - sigma2 / 2
        return rng.lognormal(mu, math.sqrt(sigma2), n)


@dataclass(frozen=True, kw_only=True)
class Bimodal:
    """Fast jobs, and a fraction ``p_slow`` of slow ones."""

    fast_s: float
    slow_s: float
    p_slow: float

    @property
    def mean_s(self) -> float:
        """Mean service time."""
        return (1 - self.p_slow) * self.fast_s + self.p_slow * self.slow_s

    @property
    def scv(self) -> float:
        """Squared coefficient of variation."""
        second = (1 - self.p_slow) * self.fast_s**2 + self.p_slow * self.slow_s**2
        return second / self.mean_s**2 - 1

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` service times."""
        return np.where(rng.random(n) < self.p_slow, self.slow_s, self.fast_s)


Service = Fixed | Exponential | Lognormal | Bimodal

# --- the workload ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedJob:
    """One job of a plan, in model seconds (multiply by the workload's time_scale for wall)."""

    index: int
    arrival_s: float
    service_s: float
    priority: int
    fail_probability: float


@dataclass(frozen=True, kw_only=True)
class Workload:
    """A seeded synthetic workload.

    Example:
        >>> Workload(jobs=500, arrival=Poisson(rate_per_s=3.2), service=Exponential(mean_s=1.0),
        ...          priorities={9: 0.5, 0: 0.5}, fail_probability=0.1, time_scale=0.01).jobs
        500

    Args:
        jobs: how many jobs to submit.
        arrival: the arrival process (rates in jobs per model second).
        service: the service-time distribution (model seconds).
        priorities: priority -> share of the jobs (normalised).
        fail_probability: chance that an attempt fails, the same for every job and attempt.
        max_retries: retries per job.
        time_scale: wall seconds per model second on the real queue (the virtual backend
            never reads it: there every time is model seconds).
        seed: every draw comes from streams spawned from this seed.
        delay: model seconds between each job's submit and the moment it may run, drawn
            from a service-time distribution (its own stream; ``Fixed(seconds=2)`` delays
            every job 2 s), or None. A delayed job is ``scheduled`` (``submit(...,
            delay_s=)``) until a ``DEQUEUE`` promotes it; its wait counts from the submit.
    """

    jobs: int = 1000
    arrival: Arrival = field(default_factory=lambda: Poisson(rate_per_s=8.0))
    service: Service = field(default_factory=lambda: Exponential(mean_s=1.0))
    priorities: Mapping[int, float] = field(default_factory=lambda: {0: 1.0})
    fail_probability: float = 0.0
    max_retries: int = 3
    time_scale: float = 0.01
    seed: int = 0
    delay: Service | None = None

    def __post_init__(self) -> None:
        if self.delay is not None and not isinstance(self.delay, Service):
            raise InvalidInputError(
                "delay must be a service-time distribution (e.g. Fixed(seconds=2)) or None",
                field="delay",
                value=self.delay,
            )
        if self.jobs < 1:
            raise InvalidInputError("jobs must be >= 1", field="jobs", value=self.jobs)
        if not 0 <= self.fail_probability <= 1:
            raise InvalidInputError(
                "fail_probability must be in [0, 1]",
                field="fail_probability",
                value=self.fail_probability,
            )
        if not self.time_scale > 0:
            raise InvalidInputError(
                "time_scale must be > 0", field="time_scale", value=self.time_scale
            )
        bad = [p for p in self.priorities if not PRIORITY_MIN <= p <= PRIORITY_MAX]
        shares = list(self.priorities.values())
        if bad or not shares or min(shares) < 0 or not sum(shares) > 0:
            raise InvalidInputError(
                f"priorities must map {PRIORITY_MIN}..{PRIORITY_MAX} to shares >= 0, not all 0",
                field="priorities",
                value=dict(self.priorities),
            )

    def streams(self, k: int) -> list[np.random.Generator]:
        """``k`` independent generators for this seed (0: arrivals, 1: service, 2: priority;
        more for fault plans)."""
        return [np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(k)]

    def draws(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The plan as arrays: arrival times and service times (model seconds) and
        priorities, in arrival order. :meth:`plan` is built from these, so every engine
        that reads them sees the same draws."""
        arrivals, service, priority = self.streams(3)
        times = self.arrival.times(self.jobs, arrivals)
        services = self.service.draw(self.jobs, service)
        levels = sorted(self.priorities)
        shares = np.array([self.priorities[p] for p in levels], dtype=float)
        chosen = priority.choice(levels, size=self.jobs, p=shares / shares.sum())
        return times, services, chosen

    def delays(self) -> np.ndarray | None:
        """Each job's delay between submit and ready, model seconds (>= 0), in arrival
        order; None without a ``delay``. Drawn from the fourth stream, so the other draws
        are the same with or without it.

        Example:
            >>> Workload(jobs=2, delay=Fixed(seconds=1.5)).delays().tolist()
            [1.5, 1.5]
        """
        if self.delay is None:
            return None
        return np.maximum(self.delay.draw(self.jobs, self.streams(4)[3]), 0.0)

    def plan(self) -> list[PlannedJob]:
        """The jobs, in arrival order: the same list for the same workload."""
        times, services, chosen = self.draws()
        return [
            PlannedJob(i, float(t), float(s), int(p), self.fail_probability)
            for i, (t, s, p) in enumerate(zip(times, services, chosen, strict=True))
        ]

    @property
    def arrival_rate_per_s(self) -> float:
        """Mean arrival rate, jobs per model second."""
        return float(self.arrival.rate_per_s)

    def class_rates(self) -> Sequence[tuple[int, float]]:
        """(priority, arrival rate) from highest to lowest priority."""
        total = sum(self.priorities.values())
        return [
            (p, self.arrival_rate_per_s * self.priorities[p] / total)
            for p in sorted(self.priorities, reverse=True)
        ]


def _require_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInputError(f"{name} must be > 0", field=name, value=value)
