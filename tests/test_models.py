"""jobsim.models: job records as read back from Redis, statuses, stats and worker entries."""

from __future__ import annotations

import pydantic
import pytest

from jobsim.keys import Keys
from jobsim.models import (
    ACTIVE,
    PRIORITY_MAX,
    PRIORITY_MIN,
    TERMINAL,
    Attempt,
    Job,
    JobStatus,
    Outcome,
    QueueStats,
)

HASH = {
    "task": "resize",
    "payload": '{"w": 3, "tags": ["a"]}',
    "priority": "7",
    "status": "retrying",
    "attempts": "2",
    "max_retries": "3",
    "max_attempts": "4",
    "error": "boom",
    "worker": "w-2",
    "submitted": "1700000000000000",
    "w1": "w-1", "s1": "1700000000500000", "e1": "1700000001000000", "o1": "retry", "x1": "boom",
    "w2": "w-2", "s2": "1700000002000000",
    "redeliveries": "1",
    "fenced": "0",
}  # fmt: skip


def test_a_job_hash_decodes_into_typed_fields_and_an_attempt_log() -> None:
    """Integers, JSON payload, µs timestamps as float seconds, one Attempt per delivery."""
    job = Job.from_hash("j1", HASH)
    assert (job.id, job.task, job.priority, job.status) == ("j1", "resize", 7, JobStatus.RETRYING)
    assert job.payload == {"w": 3, "tags": ["a"]}
    assert job.submitted_at == 1_700_000_000.0 and job.finished_at is None
    assert job.last_error == "boom" and job.result is None
    assert (job.redeliveries, job.fenced, job.requeues) == (1, 0, 0)
    first, second = job.attempt_log
    expected = Attempt(number=1, worker="w-1", started_at=1_700_000_000.5,
                       ended_at=1_700_000_001.0, outcome=Outcome.RETRY, error="boom")  # fmt: skip
    assert first == expected
    assert second.outcome is Outcome.RUNNING and second.ended_at is None  # still running


def test_a_stored_result_is_decoded_from_json() -> None:
    """The result field holds JSON; a JSON null result stays None."""
    done = {**HASH, "status": "completed", "result": '{"ok": true}', "finished": "1700000003000000"}
    job = Job.from_hash("j1", done)
    assert job.result == {"ok": True} and job.finished_at == 1_700_000_003.0
    assert Job.from_hash("j1", {**done, "result": "null"}).result is None


def test_retries_left_counts_the_attempts_still_allowed_and_never_goes_negative() -> None:
    """max_attempts - attempts, floored at 0 (requeues may push attempts past the limit)."""
    assert Job.from_hash("j", HASH).retries_left == 2
    over = Job.from_hash("j", {**HASH, "attempts": "6"})
    assert over.retries_left == 0 and len(over.attempt_log) == 6


def test_a_real_queue_record_round_trips_through_from_hash(make_queue, client) -> None:
    """The raw hash a submit writes decodes to exactly what queue.status() returns."""
    queue = make_queue()
    job_id = queue.submit("noop", {"n": [1, 2]}, priority=PRIORITY_MAX, max_retries=1)
    raw = client.hgetall(Keys(queue.name).job(job_id))
    job = Job.from_hash(job_id, raw)
    assert job == queue.status(job_id)
    assert (job.status, job.priority, job.max_retries, job.attempts) == (
        JobStatus.QUEUED, PRIORITY_MAX, 1, 0)  # fmt: skip
    assert job.retries_left == job.max_attempts == 2


def test_records_are_frozen() -> None:
    """Jobs and attempts cannot be changed after they are read."""
    job = Job.from_hash("j", HASH)
    with pytest.raises(pydantic.ValidationError):
        job.status = JobStatus.COMPLETED  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        job.attempt_log[0].outcome = Outcome.FAILED  # type: ignore[misc]


def test_active_and_terminal_partition_the_statuses() -> None:
    """Every status is either active or terminal, never both."""
    assert set(JobStatus) == ACTIVE | TERMINAL and not ACTIVE & TERMINAL
    assert {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED} == TERMINAL
    assert JobStatus.SCHEDULED in ACTIVE


def test_statuses_print_and_compare_as_their_strings() -> None:
    """str(status) is its value, and a status equals that string (it is a str enum)."""
    assert str(JobStatus.RETRYING) == "retrying" and JobStatus.FAILED == "failed"
    assert JobStatus("queued") is JobStatus.QUEUED


def test_queue_stats_count_active_jobs_and_list_every_status_in_order() -> None:
    """active = scheduled + queued + processing + retrying; by_status has every status in
    lifecycle order."""
    stats = QueueStats(queued=1, processing=2, retrying=3, completed=4, failed=5, totals={})
    assert stats.active == 6 and not stats.paused
    assert stats.by_status() == {"scheduled": 0,
        "queued": 1, "processing": 2, "retrying": 3, "completed": 4, "failed": 5,
        "cancelled": 0}  # fmt: skip
    assert QueueStats(queued=0, processing=0, retrying=0, completed=0, failed=0, scheduled=7,
                      totals={}).active == 7  # fmt: skip


def test_the_priority_range_is_zero_to_nine() -> None:
    """Priorities run 0..9, higher first (the documented range)."""
    assert (PRIORITY_MIN, PRIORITY_MAX) == (0, 9)
