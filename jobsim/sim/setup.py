"""How the queue and workers are set up for a run: everything but the workload and faults.

Its durations (``retry``, ``lease_s``, ``aging_s``, ``job_timeout_s``) are model seconds on
every backend, like the workload's and the fault plan's: the real runner multiplies them by
the workload's ``time_scale`` where it builds the queue and the pool, and the virtual
backend uses them as they are, so there the time scale changes nothing. ``prefetch_s`` and
``drain_timeout_s`` are knobs of the real queue's wall clock and stay wall seconds.

Example:
    >>> Setup(workers=2, lease_s=30.0).backend
    'embedded'
    >>> Setup(rate_limit=RateLimit(per_s=2, burst=1), concurrency_limit=3).concurrency_limit
    3
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jobsim.errors import InvalidInputError
from jobsim.limits import RateLimit
from jobsim.pool import Mode
from jobsim.retry import RetryPolicy

Backend = Literal["embedded", "local", "virtual"] | str


@dataclass(frozen=True, kw_only=True)
class Setup:
    """How the queue and workers are set up for a run (everything but workload and faults).

    Args:
        workers: worker count.
        mode: ``thread`` or ``process``.
        backend: ``embedded`` (a fresh in-process fakeredis), ``local`` (a throwaway
            redis-server this run starts, needed to restart Redis), ``virtual`` (no Redis: a
            discrete-event engine with the queue's semantics, see docs/virtual.md), or a
            ``redis://`` URL.
        retry: backoff between attempts, in model seconds.
        lease_s: lease length in model seconds (the default, 300, is long beside a mean
            service of about 1 model second, and still 0.6 wall s at ``time_scale=0.002``,
            so heartbeats keep healthy jobs' leases on a loaded machine).
        aging_s: model seconds of waiting worth one priority level (None: strict).
        job_timeout_s: per-job timeout in model seconds.
        prefetch_s: how much work a worker leases ahead, in WALL seconds (real queue only).
        drain_timeout_s: give up waiting for the drain after this many WALL seconds (real
            queue only).
        rate_limit: a token bucket on the simulated task (``per_s`` tokens a model second,
            ``burst`` at most; the real runner sets ``per_s / time_scale`` on the wall clock
            in :attr:`jobsim.QueueConfig.rate_limits`), or None.
        concurrency_limit: most of the simulated task's jobs leased at once
            (:attr:`jobsim.QueueConfig.concurrency_limits`), or None.

    Raises:
        InvalidInputError: a ``rate_limit`` that is not a :class:`jobsim.RateLimit`, or a
            ``concurrency_limit`` that is not an integer >= 1.
    """

    workers: int = 4
    mode: Mode = "thread"
    backend: Backend = "embedded"
    retry: RetryPolicy = field(default_factory=RetryPolicy.immediate)
    lease_s: float = 300.0
    aging_s: float | None = None
    job_timeout_s: float | None = None
    prefetch_s: float = 0.002
    drain_timeout_s: float = 300.0
    rate_limit: RateLimit | None = None
    concurrency_limit: int | None = None

    def __post_init__(self) -> None:
        if self.rate_limit is not None and not isinstance(self.rate_limit, RateLimit):
            raise InvalidInputError(
                "rate_limit must be a jobsim.RateLimit", field="rate_limit", value=self.rate_limit
            )
        cap = self.concurrency_limit
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise InvalidInputError(
                "concurrency_limit must be an integer >= 1", field="concurrency_limit", value=cap
            )
