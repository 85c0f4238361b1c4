"""The bodies of the HTTP API (:mod:`jobsim.api.app`), with Swagger examples: the request of
``POST /submit`` and every response, errors included.

The bounds of :class:`SubmitRequest` are the queue's own constants, so the model and
:meth:`JobQueue.submit` cannot disagree; the queue still validates everything it is given
(task, payload, size) and writes nothing for a rejected job. What the published schema of
``POST /submit`` says per task is in :mod:`jobsim.api.contract`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from jobsim.models import PRIORITY_MAX, PRIORITY_MIN, Job, JobStatus, Outcome, WorkerInfo
from jobsim.requests import JOB_ID, MAX_DELAY_S, MAX_RETRIES_LIMIT, MAX_RUN_AT_S

SEED_TASK = "sleep"
"""The task a body without ``task`` runs: the seed design's simulated work."""
SEED_TASK_SECONDS = 2.0
"""How long the seed task sleeps when the payload does not say (``seconds``)."""

MAX_DEPTH = 64
"""Deepest nesting of a payload the API accepts and of a payload or result it shows: JSON
serializers (Python's, pydantic's) stop a few hundred levels down."""


def _integral(value: Any) -> Any:
    # JSON Schema counts 6.0 as an integer; strings and booleans stay errors.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def integral_as_int(value: Any) -> Any:
    """A copy of a JSON value with each integral float (``3.0``) an int, as JSON Schema sees it."""
    if isinstance(value, dict):
        return {k: integral_as_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral_as_int(v) for v in value]
    return _integral(value)


Priority = Annotated[
    int, Field(strict=True, ge=PRIORITY_MIN, le=PRIORITY_MAX), BeforeValidator(_integral)
]
Retries = Annotated[int, Field(strict=True, ge=0, le=MAX_RETRIES_LIMIT), BeforeValidator(_integral)]


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a JSON value nests lists and objects deeper than ``limit`` levels."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        level = [
            child
            for item in level
            if isinstance(item, (list, dict))
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return True


class SubmitRequest(BaseModel):
    """``POST /submit``: the seed's ``{"payload": {...}}``, plus optional settings."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"payload": {"image": "cat.png"}},
                {"task": "flaky", "payload": {"fail_probability": 0.3, "seconds": 0.5}},
            ]
        },
    )

    payload: Any = Field(
        default=None,
        description="One JSON document, handed to the task; the schema of each task says "
        "what it takes.",
    )
    task: str | None = Field(
        default=None,
        max_length=200,
        description=f"A registered task. Omitted: the seed's simulated work, `{SEED_TASK}` for "
        f"the payload's `seconds` (default {SEED_TASK_SECONDS:g}); the payload must then be an "
        "object or null.",
    )
    priority: Priority = Field(
        default=0,
        description=f"{PRIORITY_MIN}..{PRIORITY_MAX}; higher is served first.",
    )
    max_retries: Retries | None = Field(
        default=None,
        description="Retries after the first attempt (default: the queue's, 3).",
    )
    job_id: str | None = Field(
        default=None,
        pattern=JOB_ID.pattern,
        description="An id of your own (default: a random one). The same id with the same "
        "task and payload again is the same job, so a retried submit is safe.",
    )
    delay_s: float | None = Field(
        default=None,
        strict=True,  # a number: not true/false, not "30" (as JobQueue.submit refuses them)
        ge=0,
        le=MAX_DELAY_S,
        allow_inf_nan=False,
        description="Run no sooner than this many seconds from now (`scheduled` until due).",
    )
    run_at: float | None = Field(
        default=None,
        strict=True,  # a number: not true/false, not "30" (as JobQueue.submit refuses them)
        ge=0,
        le=MAX_RUN_AT_S,
        allow_inf_nan=False,
        description="Run no sooner than this time (epoch seconds, Redis time); not with `delay_s`.",
    )

    @field_validator("payload")
    @classmethod
    def _not_too_deep(cls, payload: Any) -> Any:
        if too_deep(payload):
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        return payload

    def task_and_payload(self) -> tuple[str, Any]:
        """The task to run and its payload, with the seed task's default duration filled in."""
        if self.task is not None:
            return self.task, self.payload
        if self.payload is None:
            return SEED_TASK, {"seconds": SEED_TASK_SECONDS}
        if isinstance(self.payload, dict):
            return SEED_TASK, {"seconds": SEED_TASK_SECONDS, **self.payload}
        return SEED_TASK, self.payload  # not an object: the task's own check names it


SUBMIT_EXAMPLES: dict[str, Any] = {
    "seed": {
        "summary": "The seed's body: simulated work",
        "value": {"payload": {"image": "cat.png"}},
    },
    "flaky": {
        "summary": "Fails 30% of attempts, retried up to 3 times",
        "value": {"task": "flaky", "payload": {"fail_probability": 0.3, "seconds": 1}},
    },
    "urgent": {
        "summary": "Highest priority, served first",
        "value": {"task": "sleep", "payload": {"seconds": 0.5}, "priority": 9},
    },
    "dead": {
        "summary": "Always fails: ends in the dead-letter queue",
        "value": {"task": "fail", "payload": {}, "max_retries": 1},
    },
}


# --- responses -----------------------------------------------------------------------------

_EXAMPLE_ID = "3f2b8c1e9d4a4e7f8a6b5c4d3e2f1a0b"


class SubmitResponse(BaseModel):
    """The seed's answer to ``POST /submit``."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"task_id": _EXAMPLE_ID, "status": "queued"}]}
    )

    task_id: str
    status: JobStatus = JobStatus.QUEUED


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
                    "task_id": _EXAMPLE_ID,
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
