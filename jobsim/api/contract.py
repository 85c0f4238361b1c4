"""The published contract of ``POST /submit``: one JSON-schema branch per registered task,
and the strict payload check that makes the service accept exactly what that schema allows.

The request body itself, :class:`jobsim.api.schemas.SubmitRequest`, is still what validates
a request; this module only makes the documented contract exact per task.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from jobsim.api.schemas import SEED_TASK, SEED_TASK_SECONDS, SubmitRequest, integral_as_int
from jobsim.errors import InvalidPayloadError
from jobsim.tasks import TaskRegistry

_BOTH_WHENS: dict[str, Any] = {
    "description": "delay_s or run_at, not both",
    "required": ["delay_s", "run_at"],
    "properties": {"delay_s": {"type": "number"}, "run_at": {"type": "number"}},
}
"""What no branch allows: a delay and a due time together."""


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
    common = {
        k: base["properties"][k] for k in ("priority", "max_retries", "job_id", "delay_s", "run_at")
    }
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
                "not": _BOTH_WHENS,
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
        "not": _BOTH_WHENS,
    }
    schema = {
        "title": "SubmitRequest",
        "description": base.get("description", ""),
        "oneOf": [seed, *branches],
        "examples": base.get("examples", []),
    }
    return schema, defs


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
