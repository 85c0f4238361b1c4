"""Fault plans: a declarative, seeded description of what goes wrong during a run.

Per-job faults (poison jobs, latency spikes, a slow worker) travel in the job's payload and
are applied by the simulated task itself; timed faults (worker crashes, Redis connection
drops, pauses and restarts) are applied by the runner's injector at their model times.
The same plan and seed give the same schedule.

Example:
    >>> plan = FaultPlan(poison={3: "crash"}, worker_crashes=2, redis_drops=(1.5,), seed=4)
    >>> plan.crash_times(horizon_s=10.0) == plan.crash_times(horizon_s=10.0)
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from jobsim.errors import InvalidInputError

Poison = Literal["fail", "crash", "fail_once"]
Persistence = Literal["none", "everysec", "always"]


@dataclass(frozen=True, kw_only=True)
class Spike:
    """Jobs that start between ``start_s`` and ``end_s`` (model time) take ``extra_s`` longer."""

    start_s: float
    end_s: float
    extra_s: float


@dataclass(frozen=True, kw_only=True)
class Outage:
    """A dependency every job calls is down from ``start_s`` to ``end_s`` (model time): an
    attempt that starts inside the window fails, a retryable failure, whatever the job.

    Example:
        >>> Outage(end_s=1.0).start_s
        0.0
    """

    start_s: float = 0.0
    end_s: float

    def __post_init__(self) -> None:
        if not (self.start_s >= 0 and self.end_s > self.start_s):
            raise InvalidInputError(
                "an outage needs 0 <= start_s < end_s", field="end_s", value=self.end_s
            )

    def covers(self, t_s: float) -> bool:
        """Whether an attempt starting at model time ``t_s`` finds the dependency down."""
        return self.start_s <= t_s < self.end_s


@dataclass(frozen=True, kw_only=True)
class Pause:
    """A window of ``duration_s`` from ``at_s`` (model time): ``CLIENT PAUSE`` in
    ``redis_pauses``, the queue's own pause/resume in ``queue_pauses``."""

    at_s: float
    duration_s: float


@dataclass(frozen=True, kw_only=True)
class Cancel:
    """:meth:`jobsim.JobQueue.cancel` the plan's job ``job`` (its index) at ``at_s`` (model
    time): a scheduled, queued or retrying job ends cancelled at once; a running one ends
    cancelled when its attempt ends (its worker learns of it at the next heartbeat and
    takes the lease back if it runs on past the pool's ``grace_s``)."""

    at_s: float
    job: int


@dataclass(frozen=True, kw_only=True)
class Restart:
    """Kill the Redis server at ``at_s`` (model time) and start it again with ``persistence``.

    Only possible on a server the run started itself (``backend="local"``).
    """

    at_s: float
    persistence: Persistence = "always"

    def __post_init__(self) -> None:
        if self.persistence not in ("none", "everysec", "always"):
            raise InvalidInputError(
                "persistence is none, everysec or always",
                field="persistence",
                value=self.persistence,
            )


@dataclass(frozen=True, kw_only=True)
class FaultPlan:
    """What goes wrong during a run.

    Args:
        exception_probability: extra chance that any attempt raises, on top of the
            workload's failures.
        poison: job index -> ``fail`` (always fails), ``crash`` (kills every worker that
            runs it), ``fail_once`` (fails its first attempt only).
        spikes: windows of extra latency.
        outages: windows in which every attempt that starts fails (a shared dependency down).
        worker_crashes: how many workers die at random times (a process is SIGKILLed; a
            thread abandons its leases as if it had died).
        redis_drops: model times at which every client connection is killed (``CLIENT KILL``).
        redis_pauses: ``CLIENT PAUSE`` windows.
        redis_restart: kill and restart the server (a local one only).
        queue_pauses: windows in which the queue is paused (:meth:`jobsim.JobQueue.pause`
            at ``at_s``, ``resume`` at its end): no job is leased, running jobs go on, and
            submits, acks and promotions continue. Overlapping windows act as the calls
            would: the first resume un-pauses.
        cancels: jobs cancelled at given model times (:class:`Cancel`).
        slow_worker_factor: the first worker runs every job this many times slower.
        seed: seeds the crash times.
    """

    exception_probability: float = 0.0
    poison: Mapping[int, Poison] = field(default_factory=dict)
    spikes: tuple[Spike, ...] = ()
    outages: tuple[Outage, ...] = ()
    worker_crashes: int = 0
    redis_drops: tuple[float, ...] = ()
    redis_pauses: tuple[Pause, ...] = ()
    redis_restart: Restart | None = None
    queue_pauses: tuple[Pause, ...] = ()
    cancels: tuple[Cancel, ...] = ()
    slow_worker_factor: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.exception_probability <= 1:
            raise InvalidInputError(
                "exception_probability must be in [0, 1]",
                field="exception_probability",
                value=self.exception_probability,
            )
        bad = {k: v for k, v in self.poison.items() if v not in ("fail", "crash", "fail_once")}
        if bad:
            raise InvalidInputError(
                "poison modes are fail, crash and fail_once", field="poison", value=bad
            )
        if isinstance(self.worker_crashes, bool) or self.worker_crashes < 0:
            raise InvalidInputError(
                "worker_crashes must be >= 0", field="worker_crashes", value=self.worker_crashes
            )
        if self.slow_worker_factor < 1:
            raise InvalidInputError(
                "slow_worker_factor must be >= 1",
                field="slow_worker_factor",
                value=self.slow_worker_factor,
            )

    @property
    def empty(self) -> bool:
        """Whether the plan injects nothing."""
        return self == FaultPlan(seed=self.seed)

    def crash_times(self, horizon_s: float, run_seed: int = 0) -> list[float]:
        """When workers die: uniform over the first 80% of the arrival horizon, sorted.

        ``run_seed`` (the workload's seed) varies the schedule between replications.
        """
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, run_seed, 1]))
        return sorted(float(t) for t in rng.uniform(0, 0.8 * horizon_s, self.worker_crashes))

    def timeline(self, horizon_s: float, run_seed: int = 0) -> list[tuple[float, str, float]]:
        """Every timed fault as (model time, kind, argument), in time order."""
        events = [(t, "crash", 0.0) for t in self.crash_times(horizon_s, run_seed)]
        events += [(t, "drop", 0.0) for t in self.redis_drops]
        events += [(p.at_s, "pause", p.duration_s) for p in self.redis_pauses]
        if self.redis_restart is not None:
            events.append((self.redis_restart.at_s, "restart", 0.0))
        for p in self.queue_pauses:
            events.append((p.at_s, "queue_pause", p.duration_s))
            events.append((p.at_s + p.duration_s, "resume", 0.0))
        events += [(c.at_s, "cancel", float(c.job)) for c in self.cancels]
        return sorted(events)
