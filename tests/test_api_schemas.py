"""The bodies of the service (:mod:`jobsim.api.schemas`): the submit request's defaults and
bounds, and responses that can always be encoded, whatever a job holds."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from jobsim import JobQueue
from jobsim.api import SEED_TASK, SEED_TASK_SECONDS, create_app
from jobsim.api.schemas import MAX_DEPTH, SubmitRequest, too_deep
from jobsim.tasks import TaskRegistry
from tests.support.http import FAST, submit, wait_finished


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, (SEED_TASK, {"seconds": SEED_TASK_SECONDS})),
        ({"payload": {"image": "a"}}, (SEED_TASK, {"seconds": SEED_TASK_SECONDS, "image": "a"})),
        ({"payload": {"seconds": 1}}, (SEED_TASK, {"seconds": 1})),
        ({"payload": [1]}, (SEED_TASK, [1])),
        ({"task": "noop"}, ("noop", None)),
    ],
)
def test_a_body_without_task_runs_the_seed_task_with_its_default_duration(
    body: dict[str, Any], expected: tuple[str, Any]
) -> None:
    """The seed's body gets the simulated task, its `seconds` defaulted; a named task keeps
    its payload as sent."""
    assert SubmitRequest.model_validate(body).task_and_payload() == expected


@pytest.mark.parametrize(
    "body", [{"priority": 1.5}, {"priority": "5"}, {"max_retries": True}, {"prio": 1}]
)
def test_submit_settings_are_strict_integers_and_unknown_fields_are_refused(
    body: dict[str, Any],
) -> None:
    """Priority and retries take integers only (`3.0` counts as one); unknown fields are errors."""
    with pytest.raises(ValidationError):
        SubmitRequest.model_validate(body)
    assert SubmitRequest.model_validate({"priority": 3.0}).priority == 3


def test_nesting_is_counted_in_levels_up_to_the_limit() -> None:
    """`too_deep` allows exactly `MAX_DEPTH` levels of lists and objects."""
    nest: Any = 0
    for _ in range(MAX_DEPTH):
        nest = [nest]
    assert not too_deep(nest) and too_deep([nest]) and too_deep({"a": nest})
    with pytest.raises(ValidationError):
        SubmitRequest.model_validate({"payload": [nest]})


def test_a_stored_value_that_is_not_valid_unicode_never_makes_a_read_fail(make_queue) -> None:
    """A payload or result holding a lone surrogate (stored by an older version, or a task's
    result) is shown as a placeholder on every read route instead of answering 500."""
    queue = make_queue()
    job_id = queue.submit("noop", {"keep": 1})
    queue.client.hset(
        queue.keys.job(job_id), mapping={"payload": '"\\ud800"', "result": '{"\\udc00":1}'}
    )
    with TestClient(create_app(queue, workers=0)) as http:
        for path in (f"/status/{job_id}", f"/jobs/{job_id}", "/jobs?status=queued"):
            response = http.get(path)
            assert response.status_code == 200, (path, response.text)
        shown = http.get(f"/status/{job_id}").json()
    assert "not valid Unicode" in shown["payload"] and "not valid Unicode" in shown["result"]
    assert queue.status(job_id).payload == "\ud800"  # Python readers still get the value


def test_a_task_result_that_is_not_valid_unicode_never_makes_a_read_fail(client) -> None:
    """A task returning text with a lone surrogate leaves a job every route can show."""
    tasks = TaskRegistry()
    tasks.register("surrogate", lambda payload: {"text": "\udfff"})
    queue = JobQueue(client, f"t{uuid.uuid4().hex[:8]}", FAST, registry=tasks)
    with TestClient(create_app(queue, workers=1)) as http:
        task_id = submit(http, task="surrogate")
        (job,) = wait_finished(http, [task_id])
        assert http.get(f"/jobs/{task_id}").status_code == 200
        assert http.get(f"/jobs?status={job['status']}").status_code == 200
    assert job["result"] is None or "not valid Unicode" in job["result"]
