"""How the queue and workers are set up for a run: everything but the workload and faults.

Example:
    >>> Setup(workers=2, lease_s=1.0).backend
    'embedded'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
        retry: backoff between attempts, in wall seconds.
        lease_s: lease length in wall seconds.
        aging_s: wall seconds of waiting worth one priority level (None: strict).
        job_timeout_s: per-job timeout in wall seconds.
        prefetch_s: how much work a worker leases ahead.
        drain_timeout_s: give up waiting for the drain after this long.
    """

    workers: int = 4
    mode: Mode = "thread"
    backend: Backend = "embedded"
    retry: RetryPolicy = field(default_factory=RetryPolicy.immediate)
    lease_s: float = 5.0
    aging_s: float | None = None
    job_timeout_s: float | None = None
    prefetch_s: float = 0.002
    drain_timeout_s: float = 300.0
