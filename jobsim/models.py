"""The records jobsim hands back: jobs, their attempts, queue statistics, workers.

Timestamps are seconds since the epoch as floats, taken from Redis ``TIME`` (stored as
integer microseconds), so workers on different hosts share one clock.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PRIORITY_MIN = 0
"""Lowest priority a job may have."""
PRIORITY_MAX = 9
"""Highest priority a job may have; higher numbers are served first."""


class JobStatus(str, Enum):
    """Where a job is in its life: the seed design's five status strings, plus ``scheduled``
    (delayed, not yet due) and ``cancelled``, in lifecycle order."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    PROCESSING = "processing"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


ACTIVE: frozenset[JobStatus] = frozenset(
    {JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.RETRYING}
)
"""Statuses of jobs the queue still owes work on (a scheduled job too: it will run)."""
TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
)
"""Statuses a job ends in; ``failed`` means it is in the dead-letter queue."""


class Outcome(str, Enum):
    """How one attempt ended."""

    RUNNING = "running"
    COMPLETED = "completed"
    RETRY = "retry"  # failed, will be retried after a backoff
    FAILED = "failed"  # failed, dead-lettered
    EXPIRED = "expired"  # lease ran out (worker crashed, hung or was too slow)
    TIMEOUT = "timeout"  # per-job timeout enforced by the worker pool
    CRASHED = "crashed"  # the worker process died and its supervisor gave the job back
    INTERRUPTED = "interrupted"  # the pool stopped before the job finished
    CANCELLED = "cancelled"  # the job was cancelled while this attempt held its lease


class Attempt(BaseModel):
    """One delivery of a job to a worker."""

    model_config = ConfigDict(frozen=True)

    number: int = Field(description="1 for the first attempt")
    worker: str | None = None
    leased_at: float | None = Field(
        None, description="when the lease (and any rate-limit token) was granted"
    )
    started_at: float | None = None
    ended_at: float | None = None
    outcome: Outcome = Outcome.RUNNING
    error: str | None = None
    traceback: str | None = Field(
        default=None,
        description="the stack trace of a task that raised: its last 8,192 characters",
    )


class Job(BaseModel):
    """A job record as stored in Redis.

    ``attempts`` counts deliveries to a worker, including ones whose lease expired.
    ``redeliveries`` counts deliveries made because an earlier one was lost (lease
    expired, worker died, pool stopped): each is a possible duplicate execution.
    ``fenced`` counts late acks that were refused because the worker no longer held the
    lease: each is a certain duplicate execution. ``scheduled_for`` is when a delayed job
    is (or was) due; ``cancel_requested_at`` when a cancel reached it while it ran.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    task: str
    payload: Any
    priority: int
    status: JobStatus
    attempts: int = 0
    max_retries: int
    max_attempts: int = Field(description="attempts allowed in total, including requeues")
    last_error: str | None = None
    result: Any = None
    worker: str | None = None
    submitted_at: float
    finished_at: float | None = None
    redeliveries: int = 0
    fenced: int = 0
    requeues: int = 0
    scheduled_for: float | None = None
    cancel_requested_at: float | None = None
    attempt_log: list[Attempt] = Field(default_factory=list)

    @property
    def retries_left(self) -> int:
        """Attempts still allowed after the current one."""
        return max(0, self.max_attempts - self.attempts)

    @classmethod
    def from_hash(cls, job_id: str, fields: dict[str, str]) -> Job:
        """Build a Job from its id and the job hash's decoded fields."""
        attempts = int(fields.get("attempts", 0))
        log = [
            Attempt(
                number=n,
                worker=fields.get(f"w{n}"),
                leased_at=_seconds(fields.get(f"l{n}")),
                started_at=_seconds(fields.get(f"s{n}")),
                ended_at=_seconds(fields.get(f"e{n}")),
                outcome=Outcome(fields.get(f"o{n}", Outcome.RUNNING.value)),
                error=fields.get(f"x{n}"),
                traceback=fields.get(f"t{n}"),
            )
            for n in range(1, attempts + 1)
        ]
        result = fields.get("result")
        return cls(
            id=job_id,
            task=fields["task"],
            payload=json.loads(fields["payload"]),
            priority=int(fields["priority"]),
            status=JobStatus(fields["status"]),
            attempts=attempts,
            max_retries=int(fields["max_retries"]),
            max_attempts=int(fields["max_attempts"]),
            last_error=fields.get("error"),
            result=json.loads(result) if result is not None else None,
            worker=fields.get("worker"),
            submitted_at=_seconds(fields["submitted"]) or 0.0,
            finished_at=_seconds(fields.get("finished")),
            redeliveries=int(fields.get("redeliveries", 0)),
            fenced=int(fields.get("fenced", 0)),
            requeues=int(fields.get("requeues", 0)),
            scheduled_for=_seconds(fields.get("due")),
            cancel_requested_at=_seconds(fields.get("cancel")),
            attempt_log=log,
        )


def _seconds(micros: str | None) -> float | None:
    return int(micros) / 1e6 if micros is not None else None


class QueueStats(BaseModel):
    """Counts per status right now, running totals since the queue was created, and whether
    the queue is paused."""

    model_config = ConfigDict(frozen=True)

    queued: int
    processing: int
    retrying: int
    completed: int
    failed: int
    throttled: int = Field(
        0, description="of the queued, how many a rate or concurrency limit holds back"
    )
    scheduled: int = 0
    cancelled: int = 0
    paused: bool = False
    totals: dict[str, int] = Field(
        description="submitted, completed, failed, retried, expired, fenced, requeued, "
        "cancelled, ..."
    )

    @property
    def active(self) -> int:
        """Jobs not yet in a terminal status (scheduled ones included)."""
        return self.scheduled + self.queued + self.processing + self.retrying

    def by_status(self) -> dict[str, int]:
        """Counts keyed by status value."""
        return {s.value: getattr(self, s.value) for s in JobStatus}


class WorkerInfo(BaseModel):
    """A worker registry entry, refreshed by each worker's heartbeat."""

    model_config = ConfigDict(frozen=True)

    id: str
    host: str
    pid: int
    mode: str
    started_at: float
    last_seen: float
    running: list[str] = Field(default_factory=list)
    alive: bool = True
