"""HTTP parity (:mod:`jobsim.api.submitting`): a submit with a job id of its own, an
``Idempotency-Key`` whose retry gets the first answer back, and an all-or-nothing batch; on
fakeredis and on a real redis-server."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import tests.support.failing_tasks  # noqa: F401  (registers the tasks)
from jobsim import WorkerPool
from jobsim.api import create_app
from jobsim.api.submitting import IDEMPOTENCY_HEADER, IDEMPOTENCY_TTL_S, REPLAYED_HEADER
from tests.support.http import snapshot


def test_submit_with_a_job_id_is_that_job_and_a_retry_is_a_no_op(make_queue) -> None:
    """`job_id` in the body names the job; the same body again answers the same, one job."""
    queue = make_queue()
    with TestClient(create_app(queue, workers=0)) as http:
        body = {"task": "noop", "payload": {"n": 1}, "job_id": "order-17"}
        first = http.post("/submit", json=body)
        again = http.post("/submit", json=body)
        clash = http.post("/submit", json={**body, "payload": {"n": 2}})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"task_id": "order-17", "status": "queued"}
    assert queue.stats().totals["submitted"] == 1
    assert clash.status_code == 409 and clash.json()["field"] == "job_id"


def test_a_bad_job_id_is_refused_naming_the_field(make_queue, client) -> None:
    """A job id outside the allowed characters is a 422 on `job_id`, nothing written."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        before = snapshot(client)
        response = http.post("/submit", json={"task": "noop", "job_id": "has space"})
        assert snapshot(client) == before
    assert response.status_code == 422 and response.json()["field"] == "job_id"


def test_a_retried_request_with_an_idempotency_key_gets_the_first_answer(
    make_queue, client
) -> None:
    """Same key, same body: the same status and body, marked as replayed, and one job; the
    kept answer expires after the documented TTL."""
    queue = make_queue()
    with TestClient(create_app(queue, workers=0)) as http:
        headers = {IDEMPOTENCY_HEADER: "req-1"}
        body = {"task": "noop", "payload": {"n": 1}}
        first = http.post("/submit", json=body, headers=headers)
        again = http.post("/submit", json=body, headers=headers)
        other = http.post("/submit", json=body, headers={IDEMPOTENCY_HEADER: "req-2"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers[REPLAYED_HEADER] == "true" and REPLAYED_HEADER not in first.headers
    assert other.json()["task_id"] != first.json()["task_id"]
    assert queue.stats().totals["submitted"] == 2
    kept = client.keys(queue.keys.idempotency("*"))
    assert len(kept) == 2 and all(0 < client.ttl(k) <= IDEMPOTENCY_TTL_S for k in kept)


def test_an_idempotency_key_reused_with_another_body_is_refused(make_queue, client) -> None:
    """A key seen with one body and sent with another: 409 on the header, nothing written."""
    queue = make_queue()
    with TestClient(create_app(queue, workers=0)) as http:
        headers = {IDEMPOTENCY_HEADER: "req-1"}
        http.post("/submit", json={"task": "noop", "payload": 1}, headers=headers)
        before = snapshot(client)
        response = http.post("/submit", json={"task": "noop", "payload": 2}, headers=headers)
        assert snapshot(client) == before
    assert response.status_code == 409
    assert response.json()["field"] == IDEMPOTENCY_HEADER


def test_a_submit_whose_answer_was_lost_before_it_was_kept_is_still_one_job(
    make_queue, client
) -> None:
    """Without a job id, the id comes from the key: even if the kept answer is gone (it
    expired, or the service died before keeping it), the retry is the same job."""
    queue = make_queue()
    with TestClient(create_app(queue, workers=0)) as http:
        headers = {IDEMPOTENCY_HEADER: "lost-answer"}
        first = http.post("/submit", json={"task": "noop"}, headers=headers).json()
        client.delete(*client.keys(queue.keys.idempotency("*")))
        again = http.post("/submit", json={"task": "noop"}, headers=headers)
    assert again.status_code == 200 and again.json() == first
    assert queue.stats().totals["submitted"] == 1


def test_a_batch_is_submitted_all_together_in_order(make_queue) -> None:
    """`POST /submit/batch` answers the ids in the order given, and every job is queued."""
    queue = make_queue()
    jobs = [{"task": "noop", "payload": i, "priority": i % 3} for i in range(5)]
    with TestClient(create_app(queue, workers=0)) as http:
        response = http.post(
            "/submit/batch", json={"jobs": [*jobs, {"task": "noop", "job_id": "me"}]}
        )
    assert response.status_code == 200
    ids = response.json()["task_ids"]
    assert len(ids) == 6 and ids[-1] == "me"
    assert [queue.status(i).payload for i in ids[:5]] == list(range(5))
    assert queue.stats().queued == 6


def test_a_batch_with_one_bad_job_writes_nothing_and_names_it(make_queue, client) -> None:
    """One unknown task, bad payload or repeated id anywhere in a batch: 422 naming
    `jobs.<index>.<field>` (409 for an id that clashes), and nothing written."""
    queue = make_queue()
    queue.submit("noop", job_id="taken")
    good = {"task": "noop"}
    cases = [
        ([good, {"task": "nosuch"}], 422, "jobs.1.task"),
        ([good, good, {"task": "sleep", "payload": {"seconds": "long"}}], 422,
         "jobs.2.payload.seconds"),
        ([good, {"task": "noop", "payload": 5, "job_id": "taken"}], 409, "jobs.1.job_id"),
        ([good, {"task": "noop", "job_id": "x"}, {"task": "noop", "job_id": "x"}], 409,
         "jobs.1.job_id"),
    ]  # fmt: skip
    with TestClient(create_app(queue, workers=0)) as http:
        for jobs, code, field in cases:
            before = snapshot(client)
            response = http.post("/submit/batch", json={"jobs": jobs})
            assert snapshot(client) == before
            assert response.status_code == code, response.text
            assert response.json()["field"] == field


def test_a_retried_batch_with_an_idempotency_key_is_one_batch(make_queue) -> None:
    """The same batch sent twice with one key: the same ids, submitted once."""
    queue = make_queue()
    body = {"jobs": [{"task": "noop"}, {"task": "noop"}]}
    with TestClient(create_app(queue, workers=0)) as http:
        headers = {IDEMPOTENCY_HEADER: "batch-1"}
        first = http.post("/submit/batch", json=body, headers=headers)
        again = http.post("/submit/batch", json=body, headers=headers)
    assert first.json() == again.json() and len(first.json()["task_ids"]) == 2
    assert queue.stats().totals["submitted"] == 2


def test_a_failed_attempt_s_traceback_is_in_the_job_and_the_dead_letters(make_queue) -> None:
    """`GET /jobs/{id}` and `GET /dead-letters` show each attempt's stack trace."""
    queue = make_queue()
    job_id = queue.submit("resize_needs_width", {}, max_retries=0)
    with WorkerPool(queue, concurrency=1):
        queue.wait_until_drained(timeout_s=30)
    with TestClient(create_app(queue, workers=0)) as http:
        detail = http.get(f"/jobs/{job_id}").json()
        dead = http.get("/dead-letters").json()
    tb = detail["attempt_log"][-1]["traceback"]
    assert "in resize_needs_width" in tb and tb.rstrip().endswith("KeyError: 'width'")
    assert dead["jobs"][0]["attempt_log"][-1]["traceback"] == tb


def test_a_delayed_submit_is_scheduled_and_listed(make_queue) -> None:
    """`delay_s` answers `scheduled`; the job is in `GET /jobs?status=scheduled`; a negative
    delay is a 422 on `delay_s` and writes nothing."""
    queue = make_queue()
    with TestClient(create_app(queue, workers=0)) as http:
        answer = http.post("/submit", json={"task": "noop", "delay_s": 600}).json()
        listed = http.get("/jobs", params={"status": "scheduled"}).json()
        bad = http.post("/submit", json={"task": "noop", "delay_s": -1})
    assert answer["status"] == "scheduled"
    assert queue.status(answer["task_id"]).status == "scheduled"
    assert listed["total"] == 1 and listed["jobs"][0]["task_id"] == answer["task_id"]
    assert bad.status_code == 422 and bad.json()["field"] == "delay_s"
    assert queue.stats().totals["submitted"] == 1


@pytest.mark.parametrize("field", ["delay_s", "run_at"])
@pytest.mark.parametrize("value", [False, True, "30"])
def test_a_delay_that_is_not_a_number_is_a_422_on_submit_and_batch(
    make_queue, client, field: str, value: object
) -> None:
    """`false`, `true` and `"30"` are no delay (JobQueue.submit refuses them too): a 422
    naming the field on `POST /submit` and `POST /submit/batch`, and nothing written (a
    batch once took `"delay_s": false` as 0, found by the schema fuzzer)."""
    queue = make_queue()
    with TestClient(create_app(queue, workers=0)) as http:
        before = snapshot(client)
        one = http.post("/submit", json={"task": "noop", field: value})
        batch = http.post("/submit/batch", json={"jobs": [{"task": "noop", field: value}]})
        assert snapshot(client) == before
    assert one.status_code == 422 and one.json()["field"] == field
    assert batch.status_code == 422 and field in batch.text


def test_pause_and_resume_over_http(make_queue) -> None:
    """`POST /pause` pauses (twice is harmless and says so); `POST /resume` resumes."""
    queue = make_queue()
    with TestClient(create_app(queue, workers=0)) as http:
        first = http.post("/pause").json()
        again = http.post("/pause").json()
        paused_now = queue.paused
        resumed = http.post("/resume").json()
    assert first == {"paused": True, "was_paused": False}
    assert again == {"paused": True, "was_paused": True}
    assert paused_now and not queue.paused
    assert resumed == {"paused": False, "was_paused": True}


def test_cancel_over_http_and_a_finished_job_is_a_409(make_queue, client) -> None:
    """`POST /jobs/{id}/cancel` cancels a scheduled job at once; a completed one is a 409 and
    stays completed; an unknown id is a 404."""
    queue = make_queue()
    done = queue.submit("noop")
    with WorkerPool(queue, concurrency=1):
        queue.wait(done, timeout_s=10)
    queued = queue.submit("noop", delay_s=600)
    with TestClient(create_app(queue, workers=0)) as http:
        answer = http.post(f"/jobs/{queued}/cancel")
        before = snapshot(client)
        finished = http.post(f"/jobs/{done}/cancel")
        assert snapshot(client) == before
        missing = http.post("/jobs/ghost/cancel")
    assert answer.status_code == 200
    assert answer.json() == {"task_id": queued, "cancelled": True, "status": "cancelled"}
    assert finished.status_code == 409 and finished.json()["field"] == "task_id"
    assert missing.status_code == 404
    assert queue.status(done).status == "completed"


def test_status_long_polls_until_the_job_finishes(make_queue) -> None:
    """`GET /status/{id}?wait_s=` answers once the job is finished; when the wait runs out
    it answers the status then; a wait over the bound is a 422."""
    queue = make_queue()
    with TestClient(create_app(queue, workers=1)) as http:
        job_id = http.post("/submit", json={"task": "sleep", "payload": {"seconds": 0.2}}).json()
        finished = http.get(f"/status/{job_id['task_id']}", params={"wait_s": 20})
        too_long = http.get(f"/status/{job_id['task_id']}", params={"wait_s": 31})
    assert finished.status_code == 200 and finished.json()["status"] == "completed"
    assert too_long.status_code == 422 and too_long.json()["field"] == "wait_s"
    later = queue.submit("noop", delay_s=600)
    with TestClient(create_app(queue, workers=0)) as http:
        ran_out = http.get(f"/status/{later}", params={"wait_s": 0.05})
    assert ran_out.status_code == 200 and ran_out.json()["status"] == "scheduled"
