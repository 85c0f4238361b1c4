"""The HTTP service in process (FastAPI's TestClient), on fakeredis and on a real redis-server."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from jobsim import JobQueue, QueueConfig, RetryPolicy
from jobsim.api import API_KEY_ENV, SEED_TASK, SEED_TASK_SECONDS, create_app
from jobsim.cli import main
from jobsim.localredis import free_port
from jobsim.tasks import TaskRegistry, registry

FAST = QueueConfig(retry=RetryPolicy(kind="fixed", base_s=0.001, cap_s=0.001))


def _until(predicate: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
    return value


def _snapshot(client: redis.Redis) -> dict[str, object]:
    return {key: client.dump(key) for key in client.scan_iter(match="*")}


def _status(http: TestClient, task_id: str) -> dict[str, Any]:
    response = http.get(f"/status/{task_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _finished(http: TestClient, task_id: str) -> dict[str, Any] | None:
    body = _status(http, task_id)
    return body if body["status"] in ("completed", "failed") else None


def _wait_finished(http: TestClient, ids: list[str]) -> list[dict[str, Any]]:
    return [_until(lambda task_id=task_id: _finished(http, task_id)) for task_id in ids]


def _submit(http: TestClient, **body: Any) -> str:
    response = http.post("/submit", json=body)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["task_id"]
    return task_id


# --- the seed's contract ---------------------------------------------------------------------


def test_seed_body_is_accepted_as_is_and_queues_the_simulated_task(make_queue) -> None:
    """`{"payload": {...}}` answers exactly `{"task_id", "status": "queued"}` and queues the
    documented default task with its default duration."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        response = http.post("/submit", json={"payload": {"image": "cat.png"}})
        assert response.status_code == 200
        answer = response.json()
        assert set(answer) == {"task_id", "status"} and answer["status"] == "queued"
        job = _status(http, answer["task_id"])
    assert job["task"] == SEED_TASK
    assert job["payload"] == {"image": "cat.png", "seconds": SEED_TASK_SECONDS}
    assert (job["status"], job["attempts"], job["retries_left"]) == ("queued", 0, 4)


def test_status_follows_a_job_to_completed_with_timestamps_and_result(client) -> None:
    """A job's status moves to `completed`, with one attempt, ordered timestamps and its result."""
    tasks = TaskRegistry()
    tasks.register("double", lambda payload: {"doubled": payload["x"] * 2})
    queue = JobQueue(client, f"t{uuid.uuid4().hex[:8]}", FAST, registry=tasks)
    with TestClient(create_app(queue, workers=2)) as http:
        task_id = _submit(http, task="double", payload={"x": 21})
        (job,) = _wait_finished(http, [task_id])
    assert job["status"] == "completed" and job["result"] == {"doubled": 42}
    assert job["attempts"] == 1 and job["last_error"] is None
    assert job["submitted_at"] <= job["started_at"] <= job["finished_at"]


def test_a_job_that_keeps_failing_shows_its_errors_and_ends_dead_lettered(make_queue) -> None:
    """A job failing every attempt uses `max_retries + 1` attempts, shows its last error and
    ends `failed` with no retries left."""
    with TestClient(create_app(make_queue(FAST), workers=2)) as http:
        task_id = _submit(http, task="fail", payload={}, max_retries=2)
        (job,) = _wait_finished(http, [task_id])
        detail = http.get(f"/jobs/{task_id}").json()
    assert (job["status"], job["attempts"], job["retries_left"]) == ("failed", 3, 0)
    assert "always fails" in job["last_error"]
    assert [a["outcome"] for a in detail["attempt_log"]] == ["retry", "retry", "failed"]


def test_listing_by_status_is_in_service_order_and_respects_limit_and_offset(make_queue) -> None:
    """`GET /jobs` lists one status in its order, a page at a time, with the total."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        ids = [_submit(http, task="noop", priority=p) for p in (1, 5, 9, 5, 0)]
        page = http.get("/jobs", params={"status": "queued", "limit": 2}).json()
        rest = http.get("/jobs", params={"status": "queued", "limit": 10, "offset": 2}).json()
        done = http.get("/jobs", params={"status": "completed"}).json()
    assert page["total"] == 5 and [j["task_id"] for j in page["jobs"]] == [ids[2], ids[1]]
    assert [j["task_id"] for j in rest["jobs"]] == [ids[3], ids[0], ids[4]]
    assert done == {"status": "completed", "total": 0, "offset": 0, "jobs": []}


# --- the dead-letter queue -------------------------------------------------------------------


def test_dead_letters_can_be_listed_inspected_requeued_and_purged(make_queue) -> None:
    """Dead letters list with every attempt's error; requeued ones run again; purged ones are
    gone; a live or unknown job cannot be requeued."""
    with TestClient(create_app(make_queue(FAST), workers=2)) as http:
        # fails its first attempt only: dead with max_retries=0, completes once requeued
        once = [_submit(http, task="fail", payload={"times": 1}, max_retries=0) for _ in range(3)]
        _wait_finished(http, once)
        listing = http.get("/dead-letters").json()
        assert listing["total"] == 3
        assert {j["task_id"] for j in listing["jobs"]} == set(once)
        inspected = http.get(f"/dead-letters/{once[0]}").json()
        assert "always fails" in inspected["attempt_log"][0]["error"]

        answer = http.post(f"/dead-letters/{once[0]}/requeue")
        assert answer.json() == {"task_id": once[0], "status": "queued"}
        _until(lambda: _status(http, once[0])["status"] == "completed")
        assert http.post("/dead-letters/requeue").json() == {"requeued": 2}
        _until(lambda: all(_status(http, i)["status"] == "completed" for i in once[1:]))

        assert http.post(f"/dead-letters/{once[0]}/requeue").status_code == 409
        assert http.get(f"/dead-letters/{once[0]}").status_code == 404
        assert http.post("/dead-letters/nope/requeue").status_code == 404

        dead = [_submit(http, task="fail", payload={"permanent": True}) for _ in range(2)]
        _wait_finished(http, dead)
        assert http.delete("/dead-letters").json() == {"purged": 2}
        assert http.get(f"/status/{dead[0]}").status_code == 404


# --- stats, health, metrics ------------------------------------------------------------------


def test_stats_report_counts_totals_throughput_and_the_worker_registry(make_queue) -> None:
    """`/stats` counts per status and running totals, jobs finished in the window, and workers."""
    with TestClient(create_app(make_queue(FAST), workers=2)) as http:
        ids = [_submit(http, task="noop") for _ in range(5)]
        ids.append(_submit(http, task="fail", payload={"permanent": True}))
        _wait_finished(http, ids)
        stats = http.get("/stats", params={"window_s": 600}).json()
    assert stats["counts"] == {
        "queued": 0,
        "processing": 0,
        "retrying": 0,
        "completed": 5,
        "failed": 1,
    }
    assert stats["totals"]["submitted"] == 6 and stats["totals"]["completed"] == 5
    assert (stats["throughput"]["completed"], stats["throughput"]["failed"]) == (5, 1)
    assert len(stats["workers"]) == 2 and all(w["alive"] for w in stats["workers"])


def test_health_is_ok_when_redis_answers_and_every_worker_heartbeats(make_queue) -> None:
    """`/health` answers 200 `ok` with its workers alive."""
    with TestClient(create_app(make_queue(), workers=3)) as http:
        response = _until(lambda: (r := http.get("/health")).status_code == 200 and r)
    assert response.json()["status"] == "ok"
    assert response.json()["workers_alive"] == response.json()["workers_expected"] == 3


def test_unreachable_redis_is_503_never_500() -> None:
    """With Redis gone, `/health` says `down` and every other endpoint answers 503."""
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, decode_responses=True)
    http = TestClient(create_app(JobQueue(dead, "gone"), workers=0))  # no lifespan: no Redis
    health = http.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "down"
    for method, path in [("GET", "/stats"), ("GET", "/status/x"), ("GET", "/metrics")]:
        response = http.request(method, path)
        assert response.status_code == 503, (path, response.text)
        assert response.json()["detail"].startswith("Redis unreachable")
    assert http.post("/submit", json={"task": "noop"}).status_code == 503


def test_metrics_are_prometheus_text_that_agrees_with_the_queue(make_queue) -> None:
    """`/metrics` parses as Prometheus text; counters equal the queue's totals, depth gauges its
    counts, and the wait and run histograms hold every job finished while it ran."""
    queue = make_queue(FAST)
    with TestClient(create_app(queue, workers=2)) as http:
        ids = [_submit(http, task="noop") for _ in range(4)]
        ids.append(_submit(http, task="fail", payload={"times": 1}, max_retries=1))
        _wait_finished(http, ids)
        response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    q = ("queue", queue.name)
    totals = queue.stats().totals
    for name in ("submitted", "completed", "failed", "retried"):
        assert samples[(f"jobsim_jobs_{name}_total", (q,))] == totals.get(name, 0)
    assert samples[("jobsim_queue_depth", (q, ("status", "completed")))] == 5
    assert samples[("jobsim_job_wait_seconds_count", (q,))] == 5
    runs = {"completed": 5, "retry": 1}
    for outcome, count in runs.items():
        assert samples[("jobsim_job_run_seconds_count", (("outcome", outcome), q))] == count


# --- bad input and safety --------------------------------------------------------------------

JSON = {"content-type": "application/json"}
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
        _submit(http, task="noop", payload={"keep": 1})
        before = _snapshot(client)
        if isinstance(body, bytes):
            response = http.post(
                "/submit", content=body, headers={"content-type": "application/json"}
            )
        else:
            response = http.post("/submit", json=body)
        after = _snapshot(client)
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
        before = _snapshot(client)
        response = http.request(method, route.format(task_id))
        assert _snapshot(client) == before
    assert response.status_code == 404, response.text
    assert response.json()["field"] == "task_id"


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
        task_id = _submit(http, task="surrogate")
        (job,) = _wait_finished(http, [task_id])
        assert http.get(f"/jobs/{task_id}").status_code == 200
        assert http.get(f"/jobs?status={job['status']}").status_code == 200
    assert job["result"] is None or "not valid Unicode" in job["result"]


def test_api_key_guards_every_endpoint_but_health_and_a_rejected_call_changes_nothing(
    make_queue, client, monkeypatch
) -> None:
    """With `JOBSIM_API_KEY` set, a missing or wrong `X-API-Key` gets 401 and writes nothing;
    `/health` and the docs stay open; the right key works."""
    monkeypatch.setenv(API_KEY_ENV, "s3cret")
    with TestClient(create_app(make_queue(), workers=0)) as http:
        before = _snapshot(client)
        for headers in ({}, {"X-API-Key": "wrong"}):
            for method, path in [("POST", "/submit"), ("GET", "/stats"), ("GET", "/metrics")]:
                response = http.request(method, path, json={"task": "noop"}, headers=headers)
                assert response.status_code == 401, (path, response.text)
                assert response.json()["field"] == "X-API-Key"
            assert http.delete("/dead-letters", headers=headers).status_code == 401
        assert _snapshot(client) == before
        assert http.get("/health").status_code == 200
        assert http.get("/docs").status_code == 200
        ok = http.post("/submit", json={"task": "noop"}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200


# --- graceful shutdown -----------------------------------------------------------------------


def test_an_in_flight_job_finishes_when_shutdown_is_within_the_grace_period(make_queue) -> None:
    """Stopping the service lets a running job finish within the grace period."""
    queue = make_queue(FAST)
    with TestClient(create_app(queue, workers=1, grace_s=30)) as http:
        task_id = _submit(http, task="sleep", payload={"seconds": 0.3})
        _until(lambda: _status(http, task_id)["status"] == "processing")
    job = queue.status(task_id)
    assert (job.status, job.attempts) == ("completed", 1)


def test_an_in_flight_job_outlasting_the_grace_goes_back_and_runs_after_a_restart(
    make_queue,
) -> None:
    """A job still running when the grace period ends goes back to the queue (the attempt
    counts as interrupted), and the next service on the same queue completes it."""
    queue = make_queue(FAST)
    with TestClient(create_app(queue, workers=1, grace_s=0.05)) as http:
        task_id = _submit(http, task="sleep", payload={"seconds": 1.0})
        _until(lambda: _status(http, task_id)["status"] == "processing")
    job = queue.status(task_id)
    assert (job.status, job.attempts, job.attempt_log[0].outcome) == ("queued", 1, "interrupted")
    with TestClient(create_app(queue, workers=1)) as http:
        (final,) = _wait_finished(http, [task_id])
    assert (final["status"], final["attempts"]) == ("completed", 2)


# --- docs and the command line ---------------------------------------------------------------


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


def test_serve_binds_loopback_by_default(capsys) -> None:
    """`jobsim serve` listens on 127.0.0.1 unless told otherwise."""
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "default 127.0.0.1" in capsys.readouterr().out


def test_serve_on_a_busy_port_is_a_clean_error_before_any_worker_starts(capsys) -> None:
    """A port already in use is reported as one line, exit status 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jobsim: error: cannot listen") and "Traceback" not in err
