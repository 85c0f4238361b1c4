"""The body of ``POST /submit`` and its answer, with Swagger examples; the other answers
(job views, lists, stats, errors) are in :mod:`jobsim.api.views`.

The bounds of :class:`SubmitRequest` are the queue's own constants, so the model and
:meth:`JobQueue.submit` cannot disagree; the queue still validates everything it is given
(task, payload, size) and writes nothing for a rejected job. What the published schema of
``POST /submit`` says per task is in :mod:`jobsim.api.contract`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from jobsim.models import PRIORITY_MAX, PRIORITY_MIN, JobStatus
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

EXAMPLE_ID = "3f2b8c1e9d4a4e7f8a6b5c4d3e2f1a0b"
"""The job id the examples show."""


class SubmitResponse(BaseModel):
    """The seed's answer to ``POST /submit``."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"task_id": EXAMPLE_ID, "status": "queued"}]}
    )

    task_id: str
    status: JobStatus = JobStatus.QUEUED
