"""The answers of the HTTP API (:mod:`jobsim.api.app`) beside ``POST /submit``'s: a job's
view and detail, lists, stats, health and the error body, with Swagger examples. A stored
value a JSON answer could not carry (nested too deeply, or text that is not valid Unicode) is
shown as a placeholder, never a 500."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobsim.api.schemas import EXAMPLE_ID, MAX_DEPTH, too_deep
from jobsim.models import Job, JobStatus, Outcome, WorkerInfo


class AttemptView(BaseModel):
    """One delivery of a job to a worker (seconds since the epoch, Redis time)."""

    number: int
    worker: str | None
    started_at: float | None
    ended_at: float | None
    outcome: Outcome
    error: str | None
    traceback: str | None = Field(
        default=None, description="the stack trace of a task that raised (its last 8 kB)"
    )


class JobView(BaseModel):
    """A job's status, attempts, retries left, timestamps, last error and result."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "task_id": EXAMPLE_ID,
                    "status": "completed",
                    "task": "sleep",
                    "payload": {"image": "cat.png", "seconds": 2.0},
                    "priority": 0,
                    "attempts": 1,
                    "max_retries": 3,
                    "retries_left": 3,
                    "submitted_at": 1767225600.0,
                    "started_at": 1767225600.002,
                    "finished_at": 1767225602.004,
                    "last_error": None,
                    "result": None,
                    "worker": "host-123-ab12-0",
                    "redeliveries": 0,
                }
            ]
        }
    )

    task_id: str
    status: JobStatus = Field(
        description="scheduled | queued | processing | retrying | completed | failed | cancelled"
    )
    task: str
    payload: Any
    priority: int
    attempts: int = Field(description="deliveries to a worker so far")
    max_retries: int
    retries_left: int = Field(description="attempts still allowed after the current one")
    submitted_at: float
    started_at: float | None = Field(description="start of the latest attempt")
    finished_at: float | None
    last_error: str | None
    result: Any
    worker: str | None
    redeliveries: int = Field(description="deliveries made because an earlier one was lost")

    @classmethod
    def of(cls, job: Job) -> JobView:
        """The view of a job record."""
        return cls(**_view_fields(job))


class JobDetail(JobView):
    """A job with every attempt: worker, start, end, outcome and error."""

    attempt_log: list[AttemptView]

    @classmethod
    def of(cls, job: Job) -> JobDetail:
        """The detailed view of a job record."""
        log = [AttemptView(**a.model_dump()) for a in job.attempt_log]
        return cls(**_view_fields(job), attempt_log=log)


def _shown(value: Any) -> Any:
    """The value, or a placeholder where a JSON answer could not carry it."""
    if too_deep(value):
        return f"<nested deeper than {MAX_DEPTH} levels; read it with JobQueue.status>"
    if not _valid_unicode(value):  # UTF-8 cannot encode it: the whole answer would be a 500
        return "<text that is not valid Unicode (a lone surrogate); read it with JobQueue.status>"
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_unicode(value: Any) -> bool:
    """Whether every string in a JSON value (object keys too) can be encoded as UTF-8.

    Only lone surrogates cannot, and JSON's ``\\ud800`` escapes can spell them. The queue
    refuses them in payloads, but records stored before it did, and task results, may hold them.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _view_fields(job: Job) -> dict[str, Any]:
    started = job.attempt_log[-1].started_at if job.attempt_log else None
    return {
        "task_id": job.id,
        "status": job.status,
        "task": job.task,
        "payload": _shown(job.payload),
        "priority": job.priority,
        "attempts": job.attempts,
        "max_retries": job.max_retries,
        "retries_left": job.retries_left,
        "submitted_at": job.submitted_at,
        "started_at": started,
        "finished_at": job.finished_at,
        "last_error": job.last_error,
        "result": _shown(job.result),
        "worker": job.worker,
        "redeliveries": job.redeliveries,
    }


class JobList(BaseModel):
    """One page of the jobs in one status."""

    status: JobStatus
    total: int = Field(description="jobs in this status now")
    offset: int
    jobs: list[JobView]


class DeadLetterList(BaseModel):
    """One page of the dead-letter queue, oldest first, with every attempt's error."""

    total: int = Field(description="dead letters now")
    offset: int
    jobs: list[JobDetail]


class RequeuedAll(BaseModel):
    """How many dead letters went back to the queue."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"requeued": 12}]})

    requeued: int


class Purged(BaseModel):
    """How many dead letters were deleted."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"purged": 12}]})

    purged: int


class Throughput(BaseModel):
    """Jobs that finished in the last ``window_s`` seconds of Redis time.

    Counted from the scores of the ``completed`` and dead-letter sets, so completed records
    dropped by a retention setting are not counted.
    """

    window_s: float
    completed: int
    failed: int
    completed_per_s: float
    failed_per_s: float


class StatsResponse(BaseModel):
    """Counts per status, running totals, throughput and the worker registry."""

    queue: str
    counts: dict[str, int] = Field(description="jobs per status now")
    totals: dict[str, int] = Field(
        description="running totals: submitted, completed, failed, retried, requeued, ..."
    )
    throughput: Throughput
    workers: list[WorkerInfo]


class HealthResponse(BaseModel):
    """Whether Redis answers and this service's workers heartbeat."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "queue": "default",
                    "redis": True,
                    "workers_expected": 4,
                    "workers_alive": 4,
                }
            ]
        }
    )

    status: Literal["ok", "degraded", "down"] = Field(
        description="ok; degraded: some workers silent; down: Redis unreachable"
    )
    queue: str
    redis: bool
    workers_expected: int = Field(description="workers this service runs")
    workers_alive: int = Field(description="of those, how many heartbeat")


class ErrorBody(BaseModel):
    """Every error answer: a message that starts with the offending field, and the field."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "priority: priority 12 is outside 0..9",
                    "field": "priority",
                    "error": "InvalidPriorityError",
                }
            ]
        }
    )

    detail: str
    field: str | None = Field(default=None, description="the offending field, if one is")
    error: str = Field(default="error", description="the kind of error")
