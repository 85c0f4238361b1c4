"""The settings of a queue: lease, retention, retry policy and priority aging.

Every producer and worker of one queue should use the same :class:`QueueConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from jobsim.errors import InvalidInputError
from jobsim.limits import RateLimit, TaskLimits, checked_caps, checked_rates, limit_table
from jobsim.periodic import Periodic
from jobsim.retry import RetryPolicy

STRICT_BAND_US = 10**14
"""Without aging, one priority level outweighs ~3 years of waiting: strict priority."""


@dataclass(frozen=True, kw_only=True)
class Lease:
    """How long a dequeued job belongs to its worker without a heartbeat.

    Example:
        >>> Lease(duration_s=10).heartbeat_every_s
        3.333...

    Args:
        duration_s: lease length; a worker silent this long loses the job to another.
        heartbeat_s: how often live workers extend their leases (default: a third of it).
    """

    duration_s: float = 30.0
    heartbeat_s: float | None = None

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise InvalidInputError(
                "lease duration_s must be > 0", field="duration_s", value=self.duration_s
            )
        if self.heartbeat_s is not None and not 0 < self.heartbeat_s < self.duration_s:
            raise InvalidInputError(
                "heartbeat_s must be > 0 and shorter than the lease",
                field="heartbeat_s",
                value=self.heartbeat_s,
            )

    @property
    def heartbeat_every_s(self) -> float:
        """Seconds between heartbeats."""
        return self.heartbeat_s if self.heartbeat_s is not None else self.duration_s / 3


@dataclass(frozen=True, kw_only=True)
class Retention:
    """How many finished (completed) job records to keep; dead letters are kept until purged.
    Cancelled records follow the same two limits, counted apart from completed ones.

    The default keeps the last 10,000 completed records and none older than a day, so a
    queue that runs forever holds bounded memory (about 0.5 kB per record with the attempt
    log). Workers sweep on every round trip, busy or idle, at most 1,000 records a time.

    Example:
        >>> Retention(max_completed=None, max_age_s=None).unlimited   # keep everything
        True

    Args:
        max_completed: keep at most this many completed jobs (oldest deleted first);
            ``None`` for no limit.
        max_age_s: delete completed jobs older than this; ``None`` for no limit.
    """

    max_completed: int | None = 10_000
    max_age_s: float | None = 86_400.0

    def __post_init__(self) -> None:
        count = self.max_completed
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise InvalidInputError(
                "max_completed must be an integer or None", field="max_completed", value=count
            )
        if count is not None and count < 1:
            raise InvalidInputError(
                "max_completed must be >= 1 (None keeps everything)",
                field="max_completed",
                value=count,
            )
        if self.max_age_s is not None and not self.max_age_s > 0:
            raise InvalidInputError(
                "max_age_s must be > 0 (None keeps everything)",
                field="max_age_s",
                value=self.max_age_s,
            )

    @property
    def unlimited(self) -> bool:
        """Whether completed records are kept forever."""
        return self.max_completed is None and self.max_age_s is None

    @property
    def keep_count(self) -> int:
        """``max_completed`` as the scripts take it (0 = no limit)."""
        return self.max_completed or 0

    @property
    def keep_age_us(self) -> int:
        """``max_age_s`` in µs as the scripts take it (0 = no limit)."""
        return round((self.max_age_s or 0) * 1e6)


@dataclass(frozen=True, kw_only=True)
class QueueConfig:
    """Settings of a queue; every producer and worker of one queue should use the same.

    Example:
        >>> QueueConfig(retry=RetryPolicy(kind="full", base_s=0.1), aging_s=5.0).aging_s
        5.0

    Args:
        retry: backoff between attempts.
        lease: lease length and heartbeat interval.
        aging_s: seconds of waiting worth one priority level (``None``: strict priority).
        retention: how many completed records to keep.
        max_payload_bytes: largest payload accepted, in UTF-8 bytes of its JSON encoding.
        default_max_retries: retries allowed when ``submit`` does not say.
        periodic: periodic jobs (:class:`jobsim.Periodic`); every worker pool of the queue
            runs a scheduler that submits each tick exactly once (:mod:`jobsim.periodic`).
        attempt_log: record each attempt's start, end, worker, outcome and error. Turn it
            off only to measure what timing capture costs.
        replicas: the durability knob. With ``N > 0`` every submit and every transition
            is followed by ``WAIT N replica_timeout_ms`` on the master that holds the
            queue: a submit that fewer than N replicas acknowledged raises
            :class:`jobsim.errors.ReplicationError` (the job is written on the master, and
            a retry with the same ``job_id`` is safe); a worker's transition that fewer
            acknowledged is counted (``Leases.under_replicated``) and logged, since losing
            it in a failover repeats work but loses no job. Default 0: replication stays
            asynchronous, and a failover can lose the last acknowledged writes
            (docs/cluster.md has the numbers).
        replica_timeout_ms: how long each ``WAIT`` may block.
        rate_limits: task name -> :class:`jobsim.RateLimit`, enforced across every worker
            (see :mod:`jobsim.limits`). ``None`` leaves the limits Redis holds alone.
        concurrency_limits: task name -> most of its jobs leased at once. ``None`` leaves
            the limits Redis holds alone. When either mapping is given, the two together
            replace the queue's whole limits table when a :class:`jobsim.JobQueue` is made.
    """

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease: Lease = field(default_factory=Lease)
    aging_s: float | None = None
    retention: Retention = field(default_factory=Retention)
    max_payload_bytes: int = 64 * 1024
    default_max_retries: int = 3
    attempt_log: bool = True
    replicas: int = 0
    replica_timeout_ms: int = 1000
    rate_limits: Mapping[str, RateLimit] | None = field(default=None, hash=False)
    concurrency_limits: Mapping[str, int] | None = field(default=None, hash=False)
    periodic: tuple[Periodic, ...] = ()

    def __post_init__(self) -> None:
        schedules = tuple(self.periodic)
        if not all(isinstance(p, Periodic) for p in schedules):
            raise InvalidInputError(
                "periodic takes jobsim.Periodic schedules", field="periodic", value=schedules
            )
        names = [p.name for p in schedules]
        if len(set(names)) != len(names):
            raise InvalidInputError("periodic names must be unique", field="periodic", value=names)
        object.__setattr__(self, "periodic", schedules)  # a list given is kept as a tuple
        for name in ("replicas", "replica_timeout_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be an integer >= 0", field=name, value=value)
        if self.aging_s is not None and not self.aging_s > 0:
            raise InvalidInputError("aging_s must be > 0", field="aging_s", value=self.aging_s)
        # Copies, so a caller mutating its dict later cannot change a frozen config.
        object.__setattr__(self, "rate_limits", checked_rates(self.rate_limits))
        object.__setattr__(self, "concurrency_limits", checked_caps(self.concurrency_limits))

    @property
    def limits(self) -> dict[str, TaskLimits] | None:
        """The limits table these settings declare, one entry per limited task; ``None``
        when they declare none (the table in Redis is then left as it is)."""
        if self.rate_limits is None and self.concurrency_limits is None:
            return None
        return limit_table(self.rate_limits, self.concurrency_limits)

    @property
    def band_us(self) -> int:
        """Queue-score distance between adjacent priority levels, in µs."""
        return STRICT_BAND_US if self.aging_s is None else round(self.aging_s * 1e6)
