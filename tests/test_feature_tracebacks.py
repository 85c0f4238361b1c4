"""Failure visibility: every failed attempt keeps its stack trace (bounded) in the job
record, in ``job.attempt_log[n].traceback``, in the dead letters and over HTTP, for thread and
process workers alike. Each runs on fakeredis and on a real redis-server."""

from __future__ import annotations

import pytest

import tests.support.failing_tasks  # noqa: F401  (registers the tasks)
from jobsim import WorkerPool
from jobsim.scripts import NACK_ITEMS, TRACEBACK_CHARS, Nack


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_failing_task_leaves_its_traceback_with_its_own_frame(make_queue, mode) -> None:
    """A task raising ``KeyError('width')``: each attempt's record names the error and holds
    the stack trace down to the task's own line, and the dead letter shows the same."""
    queue = make_queue()
    job_id = queue.submit("resize_needs_width", {"height": 3}, max_retries=1)
    with WorkerPool(queue, concurrency=1, mode=mode):
        queue.wait_until_drained(timeout_s=30)
    job = queue.status(job_id)
    assert job.status == "failed" and job.attempts == 2
    for attempt in job.attempt_log:
        assert attempt.error == "KeyError: 'width'"
        tb = attempt.traceback
        assert tb is not None and tb.startswith("Traceback (most recent call last):")
        assert 'failing_tasks.py", line' in tb and "in resize_needs_width" in tb
        assert 'return {"width": payload["width"]}' in tb
        assert tb.rstrip().endswith("KeyError: 'width'")
    [dead] = queue.dead_letters()
    assert dead.id == job_id and dead.attempt_log[-1].traceback == job.attempt_log[-1].traceback


def test_a_deep_traceback_is_cut_to_its_innermost_frames(make_queue) -> None:
    """A failure 400 frames down keeps exactly the last TRACEBACK_CHARS characters, the raise
    included; the head is marked as cut."""
    queue = make_queue()
    job_id = queue.submit("deep_failure", {"depth": 400}, max_retries=0)
    with WorkerPool(queue, concurrency=1):
        queue.wait_until_drained(timeout_s=30)
    tb = queue.status(job_id).attempt_log[-1].traceback
    assert tb is not None and len(tb) == TRACEBACK_CHARS
    assert tb.startswith("…") and tb.rstrip().endswith("ValueError: bottom of a deep stack")


def test_a_failure_without_a_raise_has_no_traceback(make_queue) -> None:
    """An unknown task on the worker is a failure with an error but nothing raised in a task:
    no traceback field, not an empty one."""
    queue = make_queue()
    job_id = queue.submit("noop")
    [leased] = queue.leases.exchange("w", 1).jobs
    queue.leases.fail([Nack(leased.id, leased.token, "boom", False)])
    attempt = queue.status(job_id).attempt_log[-1]
    assert (attempt.error, attempt.traceback) == ("boom", None)


def test_the_traceback_travels_in_the_fail_script_item(make_queue) -> None:
    """The traceback is a declared item of FAIL (and the batched fail in DEQUEUE)."""
    assert NACK_ITEMS[-1] == "traceback"
    queue = make_queue()
    job_id = queue.submit("noop")
    [leased] = queue.leases.exchange("w", 1).jobs
    nack = Nack(leased.id, leased.token, "E: x", False, traceback="Traceback ...\nE: x\n")
    queue.leases.exchange("w", 0, failed=[nack])
    assert queue.status(job_id).attempt_log[-1].traceback == "Traceback ...\nE: x\n"
