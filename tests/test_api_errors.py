"""How the service answers errors (:mod:`jobsim.api.errors`): the table from the exception tree
to HTTP status codes, and every 4xx/5xx naming its field and writing nothing."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from jobsim import JobQueue, errors
from jobsim.api import create_app
from jobsim.api.errors import STATUS_OF, NotADeadLetterError, status_of
from jobsim.localredis import free_port
from jobsim.models import JobStatus
from tests.support.http import snapshot, submit, unreachable_redis

TREE = [
    (errors.PayloadTooLargeError("big", field="payload"), 413),
    (errors.InvalidPayloadError("bad", field="payload"), 422),
    (errors.InvalidPriorityError("bad", field="priority"), 422),
    (errors.UnknownTaskError("bad", field="task"), 422),
    (errors.InvalidInputError("bad", field="x"), 422),
    (errors.JobNotFoundError("abc"), 404),
    (NotADeadLetterError("abc", JobStatus.QUEUED), 404),
    (errors.InvalidStateError("live", job_id="abc", status="queued"), 409),
    (errors.ConnectError("down", url="redis://x"), 503),
    (errors.InvalidURLError("bad", url="ftp://x"), 503),
    (redis.ConnectionError("refused"), 503),
    (redis.TimeoutError("slow"), 503),
    (RecursionError(), 422),
]


@pytest.mark.parametrize("exc, code", TREE, ids=lambda v: type(v).__name__)
def test_each_error_of_the_tree_maps_to_its_documented_status(exc: Exception, code: int) -> None:
    """Every exception the service answers gets the status of the table, subclasses first."""
    assert status_of(exc) == code


@pytest.mark.parametrize(
    "exc",
    [errors.JobsimError("x"), errors.PermanentError("x"), errors.DrainTimeoutError("x", active={})],
)
def test_errors_no_route_raises_are_not_in_the_table(exc: Exception) -> None:
    """Errors a route cannot raise (task-side, drain) are left to the server's 500 handler."""
    assert status_of(exc) is None


def test_every_status_of_the_table_is_named_in_the_service_description(make_queue) -> None:
    """The OpenAPI description lists the error codes; it names every code the table gives."""
    description = create_app(make_queue(), workers=0).description
    assert all(f"{code} " in description for _, code in STATUS_OF)


def test_a_method_the_path_does_not_take_is_405_with_every_allowed_method(make_queue) -> None:
    """A 405 answers the error body and an `Allow` header with the methods of that path."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        literal = http.put("/dead-letters/requeue")
        template = http.put("/dead-letters/abc")
    assert literal.status_code == template.status_code == 405
    assert literal.headers["allow"] == "POST"
    assert template.headers["allow"] == "GET"
    assert literal.json()["error"] == "http_error"


DEEP = "[" * 100 + "]" * 100
BAD_SUBMITS: list[tuple[Any, int, str]] = [
    ({"payload": {}, "priority": 10}, 422, "priority"),
    ({"priority": -1}, 422, "priority"),
    ({"priority": 1.5}, 422, "priority"),
    ({"priority": "5"}, 422, "priority"),
    ({"priority": True}, 422, "priority"),
    ({"task": "no_such_task"}, 422, "task"),
    ({"task": "sleep", "payload": {"seconds": "soon"}}, 422, "payload.seconds"),
    ({"task": "sleep", "payload": {"seconds": False}}, 422, "payload.seconds"),
    ({"task": "flaky", "payload": {"fail_probability": 2}}, 422, "payload.fail_probability"),
    ({"max_retries": -1}, 422, "max_retries"),
    ({"max_retries": 1001}, 422, "max_retries"),
    ({"payload": [1, 2]}, 422, "payload"),
    ({"priorty": 1}, 422, "priorty"),
    ({"task": "noop", "payload": {"x": "y" * 70_000}}, 413, "payload"),
    ({"task": "noop", "payload": "y" * 300_000}, 413, "body"),
    (b"not json", 422, "body"),
    (b"[]", 422, "body"),
    (b'{"task": "noop", "payload": NaN}', 422, "payload"),
    (f'{{"task": "noop", "payload": {DEEP}}}'.encode(), 422, "payload"),
    (b'{"task": "noop", "payload": ' + b"[" * 5000 + b"]" * 5000 + b"}", 422, "body"),
    (b'{"task": "noop", "payload": "\\ud800"}', 422, "payload"),
    (b'{"task": "noop", "payload": {"a\\udfffb": 1}}', 422, "payload"),
    (b'{"payload": {"note": ["\\ud83d"]}}', 422, "payload"),
    (b'{"task": "noop", "payload": ' + b"7" * 5000 + b"}", 422, "body"),
]


@pytest.mark.parametrize("body, code, field", BAD_SUBMITS)
def test_bad_submit_gets_4xx_naming_the_field_and_writes_nothing(
    make_queue, client, body: Any, code: int, field: str
) -> None:
    """Each malformed submit is answered 422 or 413 with the offending field named first, and
    Redis is left exactly as it was."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        submit(http, task="noop", payload={"keep": 1})
        before = snapshot(client)
        if isinstance(body, bytes):
            response = http.post(
                "/submit", content=body, headers={"content-type": "application/json"}
            )
        else:
            response = http.post("/submit", json=body)
        after = snapshot(client)
    assert response.status_code == code, response.text
    assert response.json()["field"] == field
    assert response.json()["detail"].startswith(f"{field}: ")
    assert after == before


BAD_READS = [
    ("/jobs?status=bogus", 422, "status"),
    ("/jobs", 422, "status"),
    ("/jobs?status=queued&limit=0", 422, "limit"),
    ("/jobs?status=queued&limt=5", 422, "limt"),
    ("/dead-letters?offset=-1", 422, "offset"),
    ("/stats?window_s=0", 422, "window_s"),
    ("/status/nope", 404, "task_id"),
    ("/jobs/nope", 404, "task_id"),
    ("/dead-letters/nope", 404, "task_id"),
]


@pytest.mark.parametrize("path, code, field", BAD_READS)
def test_bad_reads_get_4xx_naming_the_field(make_queue, path: str, code: int, field: str) -> None:
    """Out-of-range parameters and unknown ids are answered 422 / 404, naming the field."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        response = http.get(path)
    assert response.status_code == code and response.json()["field"] == field


ID_ROUTES = [
    ("GET", "/status/{}"),
    ("GET", "/jobs/{}"),
    ("GET", "/dead-letters/{}"),
    ("POST", "/dead-letters/{}/requeue"),
]


@pytest.mark.parametrize("method, route", ID_ROUTES)
@pytest.mark.parametrize("task_id", ["%00", "a%00b", "ok%0A", "a%20b", "%FF", "x" * 200])
def test_every_id_route_answers_404_for_an_id_that_cannot_exist(
    make_queue, client, method: str, route: str, task_id: str
) -> None:
    """An id no job can have (NUL, newline, space, too long) is 404 on every id route, and
    changes nothing: the requeue route does not answer 409 for it."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        before = snapshot(client)
        response = http.request(method, route.format(task_id))
        assert snapshot(client) == before
    assert response.status_code == 404, response.text
    assert response.json()["field"] == "task_id"


def test_unreachable_redis_is_503_never_500() -> None:
    """With Redis gone, `/health` says `down` and every other endpoint answers 503."""
    dead = unreachable_redis(free_port())
    http = TestClient(create_app(JobQueue(dead, "gone"), workers=0))  # no lifespan: no Redis
    health = http.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "down"
    for method, path in [("GET", "/stats"), ("GET", "/status/x"), ("GET", "/metrics")]:
        response = http.request(method, path)
        assert response.status_code == 503, (path, response.text)
        assert response.json()["detail"].startswith("Redis unreachable")
    assert http.post("/submit", json={"task": "noop"}).status_code == 503
