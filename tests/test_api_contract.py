"""The published contract of `POST /submit` (:mod:`jobsim.api.contract`): one schema branch
per registered task, and a strict check so the service accepts what that schema allows."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from jobsim.api import create_app
from jobsim.api.contract import check_payload_strictly, submit_schema
from jobsim.errors import InvalidPayloadError, UnknownTaskError
from jobsim.tasks import registry


def test_swagger_is_served_and_every_body_is_documented_with_examples(make_queue) -> None:
    """`/docs` serves Swagger; every request body has examples, and the submit schema has one
    branch per registered task plus the seed's."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        assert "swagger" in http.get("/docs").text.lower()
        spec = http.get("/openapi.json").json()
    bodies = [
        op["requestBody"]["content"]["application/json"]
        for path in spec["paths"].values()
        for op in path.values()
        if "requestBody" in op
    ]
    assert bodies and all(body.get("examples") for body in bodies)
    submit = spec["components"]["schemas"]["SubmitRequest"]
    tasks = {b["properties"]["task"].get("const") for b in submit["oneOf"]}
    assert tasks == {None, *registry.names()}


def test_each_task_branch_requires_its_task_and_forbids_other_fields() -> None:
    """A task's branch fixes `task`, takes its payload model, and nothing else."""
    schema, _ = submit_schema(registry)
    seed, *branches = schema["oneOf"]
    assert "task" not in seed.get("required", []) and seed["additionalProperties"] is False
    for branch in branches:
        assert "task" in branch["required"] and branch["additionalProperties"] is False
        assert set(branch["properties"]) == {
            "task",
            "payload",
            "priority",
            "max_retries",
            "job_id",
            "delay_s",
            "run_at",
        }


def test_payloads_are_checked_as_strictly_as_the_schema_reads() -> None:
    """`"5"` and `false` are not numbers (pydantic's lax mode would take them); `3.0` is an
    integer; a task without a payload model takes anything."""
    check_payload_strictly(registry, "sleep", {"seconds": 3.0})
    check_payload_strictly(registry, "noop", {"anything": ["goes"]})
    for bad in ({"seconds": "5"}, {"seconds": False}):
        with pytest.raises(InvalidPayloadError) as caught:
            check_payload_strictly(registry, "sleep", bad)
        assert caught.value.field == "payload.seconds"
    with pytest.raises(UnknownTaskError):
        check_payload_strictly(registry, "no_such_task", {})
