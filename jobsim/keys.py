"""Every Redis key name of a queue, built in one place.

All keys of a queue share the hash tag ``{name}``, so on Redis Cluster they live in one
slot and every Lua script can touch all of them. Job hashes are named by appending the job
id to :attr:`Keys.job_prefix`; scripts receive that prefix through ``KEYS`` and append ids
they pop, which keeps the names built here and in the same slot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_STATUS_SETS = frozenset(
    {"scheduled", "queued", "processing", "retrying", "completed", "dead", "cancelled"}
)


@dataclass(frozen=True)
class Keys:
    """Key names of one queue.

    Example:
        >>> Keys("default").queued
        'jobsim:{default}:queued'
    """

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            # Imported here: errors must stay importable from keys without a cycle.
            from jobsim.errors import InvalidInputError

            raise InvalidInputError(
                f"queue name {self.name!r} must be 1-64 characters of letters, digits, _ . : -",
                field="name",
                value=self.name,
            )

    def _key(self, suffix: str) -> str:
        return f"jobsim:{{{self.name}}}:{suffix}"

    @property
    def queued(self) -> str:
        """Sorted set of ready job ids; lowest score (highest priority, oldest) first."""
        return self._key("queued")

    @property
    def processing(self) -> str:
        """Sorted set of leased job ids, scored by lease deadline (µs, Redis time)."""
        return self._key("processing")

    @property
    def retrying(self) -> str:
        """Sorted set of job ids waiting out a backoff, scored by due time (µs)."""
        return self._key("retrying")

    @property
    def scheduled(self) -> str:
        """Sorted set of delayed job ids, scored by the time they are due (µs, Redis time)."""
        return self._key("scheduled")

    @property
    def cancelled(self) -> str:
        """Sorted set of cancelled job ids, scored by cancellation time (µs)."""
        return self._key("cancelled")

    @property
    def paused(self) -> str:
        """String present while the queue is paused (its value: when, µs): workers lease
        nothing new."""
        return self._key("paused")

    @property
    def completed(self) -> str:
        """Sorted set of completed job ids, scored by completion time (µs)."""
        return self._key("completed")

    @property
    def dead(self) -> str:
        """The dead-letter queue: sorted set of failed job ids, scored by failure time (µs)."""
        return self._key("dead")

    @property
    def clock(self) -> str:
        """Last sequence number handed out (µs of Redis time, strictly increasing)."""
        return self._key("clock")

    @property
    def wake(self) -> str:
        """List holding at most one token; idle workers block on it."""
        return self._key("wake")

    @property
    def counters(self) -> str:
        """Hash of running totals: submitted, completed, failed, retried, expired, fenced,
        replayed, stale, ..."""
        return self._key("counters")

    @property
    def workers(self) -> str:
        """Hash of worker id -> JSON registry entry."""
        return self._key("workers")

    @property
    def workers_seen(self) -> str:
        """Sorted set of worker ids by last heartbeat (µs): registry entries expire from it."""
        return self._key("workers_seen")

    @property
    def limits(self) -> str:
        """Hash of task -> ``per_s burst max_running`` (``0`` = no such limit): the rate and
        concurrency limits every worker obeys (see :mod:`jobsim.limits`)."""
        return self._key("limits")

    @property
    def limiter(self) -> str:
        """Hash of the limits' state: ``b:<task>`` its token bucket (``tokens last_us``),
        ``r:<task>`` its leases holding a concurrency slot, ``parked`` jobs parked in all."""
        return self._key("limiter")

    @property
    def slots(self) -> str:
        """Hash of job id -> task, for each lease holding one of its task's concurrency
        slots (freed exactly once, when that lease ends)."""
        return self._key("slots")

    @property
    def throttled(self) -> str:
        """Sorted set of tasks with parked jobs, scored by when (µs) they may next lease
        (2^53: when a concurrency slot frees)."""
        return self._key("throttled")

    @property
    def parked_prefix(self) -> str:
        """Prefix of the per-task sorted sets of parked jobs; see :meth:`parked`."""
        return self._key("parked:")

    def parked(self, task: str) -> str:
        """Sorted set of a task's queued jobs held back by its limits, by queue score."""
        return self.parked_prefix + task

    def reply(self, channel: str) -> str:
        """String keeping the last reply of a non-idempotent call (a worker's DEQUEUE, an
        admin request) with its request id, so a re-sent call gets it back. It expires."""
        return self._key(f"reply:{channel}")

    def of_status(self, status: str) -> str:
        """The sorted set holding the jobs of a status value (``failed``: the dead letters)."""
        name = {"failed": "dead"}.get(status, status)
        if name not in _STATUS_SETS:
            raise ValueError(f"no sorted set for status {status!r}")
        return self._key(name)

    @property
    def periodic(self) -> str:
        """Hash of periodic schedule name -> its last submitted tick (epoch seconds)."""
        return self._key("periodic")

    def idempotency(self, digest: str) -> str:
        """String keeping the first answer to an HTTP request sent with an
        ``Idempotency-Key`` (``digest`` is the key's SHA-256), so a retried request gets
        it back. It expires (``jobsim.api.submitting.IDEMPOTENCY_TTL_S``)."""
        return self._key(f"idem:{digest}")

    @property
    def job_prefix(self) -> str:
        """Prefix of job hashes; a job's key is this prefix followed by its id."""
        return self._key("job:")

    def job(self, job_id: str) -> str:
        """Hash holding one job's record."""
        return self.job_prefix + job_id

    @property
    def notify_prefix(self) -> str:
        """Prefix of the per-job notification lists :meth:`jobsim.JobQueue.wait` blocks on."""
        return self._key("notify:")

    def notify(self, job_id: str) -> str:
        """List that a waited-on job's terminal transition pushes a token to (it expires)."""
        return self.notify_prefix + job_id

    def stop(self, pool_id: str) -> str:
        """List a stopping pool pushes to, to wake its own blocked workers at once."""
        return self._key(f"stop:{pool_id}")

    def all_fixed(self) -> list[str]:
        """Every key of the queue that does not depend on a job or pool id."""
        return [
            self.queued,
            self.processing,
            self.retrying,
            self.completed,
            self.dead,
            self.clock,
            self.wake,
            self.counters,
            self.workers,
            self.workers_seen,
            self.limits,
            self.limiter,
            self.slots,
            self.throttled,
            self.scheduled,
            self.cancelled,
            self.paused,
        ]
