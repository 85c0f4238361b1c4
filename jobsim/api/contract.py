"""What ``POST /submit`` accepts: the request body, its published per-task schema, and the
strict payload check behind that schema.

The bounds are the queue's own constants, so the schema and :meth:`JobQueue.submit` cannot
disagree; the queue still validates everything it is given (task, payload, size) and writes
nothing for a rejected job.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from jobsim.errors import InvalidPayloadError
from jobsim.models import PRIORITY_MAX, PRIORITY_MIN
from jobsim.queue import MAX_RETRIES_LIMIT
from jobsim.tasks import TaskRegistry

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


def submit_schema(registry: TaskRegistry) -> tuple[dict[str, Any], dict[str, Any]]:
    """The published schema of :class:`SubmitRequest`: one branch per registered task, with
    that task's payload model, and the seed's branch without ``task``.

    Requests are still validated by :class:`SubmitRequest` and by the queue; this only makes
    the documented contract exact, so Swagger shows each task's payload and a request the
    schema allows is accepted.

    Returns:
        The schema, and the definitions its ``$ref`` s point to (OpenAPI components).
    """
    ref = "#/components/schemas/{model}"
    base = SubmitRequest.model_json_schema(ref_template=ref)
    common = {k: base["properties"][k] for k in ("priority", "max_retries")}
    defs: dict[str, Any] = {}
    seed_payload: dict[str, Any] = {"type": "object", "additionalProperties": True}
    branches = []
    for spec in sorted(registry, key=lambda s: s.name):
        payload: dict[str, Any] = {"description": "any JSON document"}
        required = ["task"]
        if spec.payload_model is not None:
            payload = spec.payload_model.model_json_schema(ref_template=ref)
            defs |= payload.pop("$defs", {})
            if payload.get("required"):
                required.append("payload")  # an absent payload is checked as {}
            else:
                payload = {"anyOf": [payload, {"type": "null"}]}
            if spec.name == SEED_TASK:
                seconds = payload.get("properties", {}).get("seconds", {})
                seed_payload["properties"] = {"seconds": {**seconds, "default": SEED_TASK_SECONDS}}
        branches.append(
            {
                "title": f"Submit {spec.name}",
                "type": "object",
                "properties": {"task": {"const": spec.name}, "payload": payload, **common},
                "required": required,
                "additionalProperties": False,
            }
        )
    seed = {
        "title": f"Submit the seed's simulated work ({SEED_TASK})",
        "type": "object",
        "properties": {
            "payload": {"anyOf": [seed_payload, {"type": "null"}]},
            "task": {"type": "null"},
            **common,
        },
        "additionalProperties": False,
    }
    schema = {
        "title": "SubmitRequest",
        "description": base.get("description", ""),
        "oneOf": [seed, *branches],
        "examples": base.get("examples", []),
    }
    return schema, defs


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


def check_payload_strictly(registry: TaskRegistry, task: str, payload: Any) -> None:
    """Check the payload against its task's model the way the published JSON schema reads:
    strictly (the queue's own check is pydantic's lax mode, where ``false`` and ``"5"`` pass
    as numbers), with ``3.0`` an integer. Everything else is left to :meth:`JobQueue.submit`.

    Raises:
        UnknownTaskError: the task is not registered.
        InvalidPayloadError: naming the first offending field of the payload.
    """
    model = registry.get(task).payload_model
    if model is None:
        return
    try:
        encoded = json.dumps(integral_as_int({} if payload is None else payload), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return  # not JSON: the queue names it
    try:
        model.model_validate_json(encoded, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidPayloadError(
            f"payload for task {task!r}: {where or 'payload'}: {first['msg']}",
            field=f"payload.{where}" if where else "payload",
            value=payload,
        ) from None


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
