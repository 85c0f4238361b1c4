"""The service's routes and lifespan (:mod:`jobsim.api.app`), in process (FastAPI's
TestClient), on fakeredis and on a real redis-server: the seed's contract, listing, the
dead-letter queue, stats, health, and graceful shutdown."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from jobsim import JobQueue
from jobsim.api import SEED_TASK, SEED_TASK_SECONDS, create_app
from jobsim.tasks import TaskRegistry
from tests.support.http import FAST, job_status, submit, until, wait_finished

# --- the seed's contract ---------------------------------------------------------------------


def test_seed_body_is_accepted_as_is_and_queues_the_simulated_task(make_queue) -> None:
    """`{"payload": {...}}` answers exactly `{"task_id", "status": "queued"}` and queues the
    documented default task with its default duration."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        response = http.post("/submit", json={"payload": {"image": "cat.png"}})
        assert response.status_code == 200
        answer = response.json()
        assert set(answer) == {"task_id", "status"} and answer["status"] == "queued"
        job = job_status(http, answer["task_id"])
    assert job["task"] == SEED_TASK
    assert job["payload"] == {"image": "cat.png", "seconds": SEED_TASK_SECONDS}
    assert (job["status"], job["attempts"], job["retries_left"]) == ("queued", 0, 4)


def test_status_follows_a_job_to_completed_with_timestamps_and_result(client) -> None:
    """A job's status moves to `completed`, with one attempt, ordered timestamps and its result."""
    tasks = TaskRegistry()
    tasks.register("double", lambda payload: {"doubled": payload["x"] * 2})
    queue = JobQueue(client, f"t{uuid.uuid4().hex[:8]}", FAST, registry=tasks)
    with TestClient(create_app(queue, workers=2)) as http:
        task_id = submit(http, task="double", payload={"x": 21})
        (job,) = wait_finished(http, [task_id])
    assert job["status"] == "completed" and job["result"] == {"doubled": 42}
    assert job["attempts"] == 1 and job["last_error"] is None
    assert job["submitted_at"] <= job["started_at"] <= job["finished_at"]


def test_a_job_that_keeps_failing_shows_its_errors_and_ends_dead_lettered(make_queue) -> None:
    """A job failing every attempt uses `max_retries + 1` attempts, shows its last error and
    ends `failed` with no retries left."""
    with TestClient(create_app(make_queue(FAST), workers=2)) as http:
        task_id = submit(http, task="fail", payload={}, max_retries=2)
        (job,) = wait_finished(http, [task_id])
        detail = http.get(f"/jobs/{task_id}").json()
    assert (job["status"], job["attempts"], job["retries_left"]) == ("failed", 3, 0)
    assert "always fails" in job["last_error"]
    assert [a["outcome"] for a in detail["attempt_log"]] == ["retry", "retry", "failed"]


def test_listing_by_status_is_in_service_order_and_respects_limit_and_offset(make_queue) -> None:
    """`GET /jobs` lists one status in its order, a page at a time, with the total."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        ids = [submit(http, task="noop", priority=p) for p in (1, 5, 9, 5, 0)]
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
        once = [submit(http, task="fail", payload={"times": 1}, max_retries=0) for _ in range(3)]
        wait_finished(http, once)
        listing = http.get("/dead-letters").json()
        assert listing["total"] == 3
        assert {j["task_id"] for j in listing["jobs"]} == set(once)
        inspected = http.get(f"/dead-letters/{once[0]}").json()
        assert "always fails" in inspected["attempt_log"][0]["error"]

        answer = http.post(f"/dead-letters/{once[0]}/requeue")
        assert answer.json() == {"task_id": once[0], "status": "queued"}
        until(lambda: job_status(http, once[0])["status"] == "completed")
        assert http.post("/dead-letters/requeue").json() == {"requeued": 2}
        until(lambda: all(job_status(http, i)["status"] == "completed" for i in once[1:]))

        assert http.post(f"/dead-letters/{once[0]}/requeue").status_code == 409
        assert http.get(f"/dead-letters/{once[0]}").status_code == 404
        assert http.post("/dead-letters/nope/requeue").status_code == 404

        dead = [submit(http, task="fail", payload={"permanent": True}) for _ in range(2)]
        wait_finished(http, dead)
        assert http.delete("/dead-letters").json() == {"purged": 2}
        assert http.get(f"/status/{dead[0]}").status_code == 404


# --- stats and health -----------------------------------------------------------------------


def test_stats_report_counts_totals_throughput_and_the_worker_registry(make_queue) -> None:
    """`/stats` counts per status and running totals, jobs finished in the window, and workers."""
    with TestClient(create_app(make_queue(FAST), workers=2)) as http:
        ids = [submit(http, task="noop") for _ in range(5)]
        ids.append(submit(http, task="fail", payload={"permanent": True}))
        wait_finished(http, ids)
        stats = http.get("/stats", params={"window_s": 600}).json()
    assert stats["counts"] == {
        "scheduled": 0,
        "queued": 0,
        "processing": 0,
        "retrying": 0,
        "completed": 5,
        "failed": 1,
        "cancelled": 0,
    }
    assert stats["totals"]["submitted"] == 6 and stats["totals"]["completed"] == 5
    assert (stats["throughput"]["completed"], stats["throughput"]["failed"]) == (5, 1)
    assert len(stats["workers"]) == 2 and all(w["alive"] for w in stats["workers"])


def test_health_is_ok_when_redis_answers_and_every_worker_heartbeats(make_queue) -> None:
    """`/health` answers 200 `ok` with its workers alive."""
    with TestClient(create_app(make_queue(), workers=3)) as http:
        response = until(lambda: (r := http.get("/health")).status_code == 200 and r)
    assert response.json()["status"] == "ok"
    assert response.json()["workers_alive"] == response.json()["workers_expected"] == 3


# --- graceful shutdown -----------------------------------------------------------------------


def test_an_in_flight_job_finishes_when_shutdown_is_within_the_grace_period(make_queue) -> None:
    """Stopping the service lets a running job finish within the grace period."""
    queue = make_queue(FAST)
    with TestClient(create_app(queue, workers=1, grace_s=30)) as http:
        task_id = submit(http, task="sleep", payload={"seconds": 0.3})
        until(lambda: job_status(http, task_id)["status"] == "processing")
    job = queue.status(task_id)
    assert (job.status, job.attempts) == ("completed", 1)


def test_an_in_flight_job_outlasting_the_grace_goes_back_and_runs_after_a_restart(
    make_queue,
) -> None:
    """A job still running when the grace period ends goes back to the queue (the attempt
    counts as interrupted), and the next service on the same queue completes it."""
    queue = make_queue(FAST)
    with TestClient(create_app(queue, workers=1, grace_s=0.05)) as http:
        task_id = submit(http, task="sleep", payload={"seconds": 1.0})
        until(lambda: job_status(http, task_id)["status"] == "processing")
    job = queue.status(task_id)
    assert (job.status, job.attempts, job.attempt_log[0].outcome) == ("queued", 1, "interrupted")
    with TestClient(create_app(queue, workers=1)) as http:
        (final,) = wait_finished(http, [task_id])
    assert (final["status"], final["attempts"]) == ("completed", 2)
