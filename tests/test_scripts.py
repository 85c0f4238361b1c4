"""Each Lua script alone, on fakeredis and on a real redis-server."""

from __future__ import annotations

import time

import pytest

from jobsim import JobQueue, JobStatus, Lease, QueueConfig, RetryPolicy
from jobsim.keys import Keys
from jobsim.scripts import SCRIPTS, Ack, Nack


def _lease(queue: JobQueue, count: int = 1, worker: str = "w") -> list:
    return queue.leases.exchange(worker, count).jobs


def test_every_script_reads_keys_only_from_its_declared_KEYS() -> None:
    """No script formats a key name: each binds names from KEYS (Cluster-safe) in the
    order its declaration gives, which is also the order its call builds them in."""
    keys = Keys("q")
    for script in SCRIPTS:
        assert "jobsim:" not in script.source, script.name
        assert "KEYS[" not in script.body, script.name  # only the generated header reads KEYS
        header = script.header.splitlines()
        assert header[1] == "-- KEYS: " + " ".join(script.keys)
        bound = [line.split(" = ")[0].removeprefix("Q.") for line in header if "KEYS[" in line]
        assert bound == list(script.keys)
        names = script.key_names(keys, reply="jobsim:{q}:reply:x")
        assert all(n.startswith("jobsim:{q}:") for n in names), names


def test_submit_writes_hash_queue_entry_and_counter(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("noop", {"a": 1}, priority=3, max_retries=2)
    job = queue.status(job_id)
    assert (job.status, job.priority, job.max_retries, job.max_attempts) == ("queued", 3, 2, 3)
    assert job.payload == {"a": 1}
    assert queue.client.zscore(queue.keys.queued, job_id) is not None
    assert queue.stats().totals["submitted"] == 1


def test_submit_batch_gets_strictly_increasing_sequence(make_queue) -> None:
    """One batch shares one TIME; the clock still orders every job (FIFO)."""
    queue = make_queue()
    ids = queue.submit_many([__import__("jobsim").JobRequest("noop")] * 50)
    scores = [queue.client.zscore(queue.keys.queued, i) for i in ids]
    assert scores == sorted(scores) and len(set(scores)) == 50


def test_dequeue_leases_highest_priority_first(make_queue) -> None:
    queue = make_queue()
    low = queue.submit("noop", priority=1)
    high = queue.submit("noop", priority=8)
    jobs = _lease(queue, 2)
    assert [j.id for j in jobs] == [high, low]
    assert all(j.attempt == 1 for j in jobs)
    job = queue.status(high)
    assert job.status == JobStatus.PROCESSING and job.worker == "w"
    assert job.attempt_log[0].started_at is not None
    assert queue.client.zscore(queue.keys.processing, high) > time.time() * 1e6


def test_dequeue_on_empty_queue_reports_next_due(make_queue) -> None:
    queue = make_queue(QueueConfig(lease=Lease(duration_s=5)))
    empty = queue.leases.exchange("w", 1)
    assert (empty.jobs, empty.next_due_s) == ([], None)
    queue.submit("noop")
    _lease(queue)
    after = queue.leases.exchange("w", 1)
    assert after.jobs == [] and 4.0 < after.next_due_s <= 5.0


def test_complete_acks_holder_and_fences_stale_token(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("noop")
    (job,) = _lease(queue)
    assert queue.leases.complete([Ack(job_id, job.token + 1)]) == [job_id]  # wrong token
    assert queue.leases.complete([Ack(job_id, job.token, '{"ok":true}')]) == []
    done = queue.status(job_id)
    assert done.status == "completed" and done.result == {"ok": True} and done.fenced == 1
    assert queue.leases.complete([Ack(job_id, job.token)]) == []  # a replay, not a fence
    assert queue.stats().completed == 1


def test_fail_schedules_retry_then_dead_letters_when_attempts_run_out(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("noop", max_retries=1)
    _lease(queue)
    assert queue.leases.fail([Nack(job_id, 1, "boom", True, 60_000_000)]) == []
    retrying = queue.status(job_id)
    assert retrying.status == "retrying" and retrying.last_error == "boom"
    due = queue.client.zscore(queue.keys.retrying, job_id)
    assert due > (time.time() + 50) * 1e6
    queue.client.zadd(queue.keys.retrying, {job_id: 0})  # make it due now
    (again,) = _lease(queue)
    assert again.attempt == 2 and again.previous_delay_s == pytest.approx(60.0)
    queue.leases.fail([Nack(job_id, 2, "boom again", True, 1_000_000)])
    dead = queue.status(job_id)
    assert dead.status == "failed" and dead.attempts == 2
    assert [a.outcome for a in dead.attempt_log] == ["retry", "failed"]
    assert [a.error for a in dead.attempt_log] == ["boom", "boom again"]


def test_fail_non_retryable_dead_letters_at_once(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("noop", max_retries=5)
    _lease(queue)
    queue.leases.fail([Nack(job_id, 1, "bad input", False, 0)])
    assert queue.status(job_id).status == "failed"
    assert queue.job_ids("failed") == [job_id]


def test_heartbeat_extends_lease_and_reports_lost(make_queue) -> None:
    queue = make_queue(QueueConfig(lease=Lease(duration_s=1)))
    job_id = queue.submit("noop")
    (job,) = _lease(queue)
    before = queue.client.zscore(queue.keys.processing, job_id)
    time.sleep(0.01)
    assert queue.leases.heartbeat("w", [(job_id, job.token), ("gone", 1)], "") == ["gone"]
    assert queue.client.zscore(queue.keys.processing, job_id) > before


def test_expired_lease_is_given_back_by_the_next_dequeue(make_queue) -> None:
    queue = make_queue(QueueConfig(lease=Lease(duration_s=0.05)))
    job_id = queue.submit("noop", max_retries=1)
    _lease(queue, worker="crashed")
    time.sleep(0.08)
    (again,) = _lease(queue, worker="alive")
    assert again.id == job_id and again.attempt == 2
    job = queue.status(job_id)
    assert job.redeliveries == 1 and job.attempt_log[0].outcome == "expired"
    assert queue.stats().totals["expired"] == 1


def test_expired_lease_on_last_attempt_dead_letters(make_queue) -> None:
    queue = make_queue(QueueConfig(lease=Lease(duration_s=0.05)))
    job_id = queue.submit("noop", max_retries=0)
    _lease(queue)
    time.sleep(0.08)
    assert _lease(queue) == []
    assert queue.status(job_id).status == "failed"


def test_release_worker_gives_back_its_leases_with_the_attempt_counted(make_queue) -> None:
    queue = make_queue()
    job_id, other = queue.submit("noop"), queue.submit("noop")
    _lease(queue, worker="dead")
    _lease(queue, worker="alive")
    assert queue.leases.release_worker("dead", "crashed", "worker died") == [job_id]
    assert queue.leases.release_worker("dead", "crashed", "worker died") == []
    assert queue.status(other).status == "processing"
    back = queue.status(job_id)
    assert back.status == "queued" and back.attempts == 1 and back.redeliveries == 1
    assert back.attempt_log[0].outcome == "crashed"


def test_requeue_dead_gives_fresh_attempts_and_purge_deletes(make_queue) -> None:
    queue = make_queue()
    ids = [queue.submit("noop", max_retries=0) for _ in range(3)]
    for job in _lease(queue, 3):
        queue.leases.fail([Nack(job.id, 1, "x", True, 0)])
    assert queue.stats().failed == 3
    queue.requeue_dead(ids[0])
    job = queue.status(ids[0])
    assert job.status == "queued" and job.max_attempts == 2 and job.requeues == 1
    assert queue.purge_dead() == 2
    assert queue.stats().failed == 0
    assert not queue.client.exists(queue.keys.job(ids[1]))


def test_due_retries_are_promoted_in_priority_order(make_queue) -> None:
    queue = make_queue(QueueConfig(retry=RetryPolicy.immediate()))
    low, high = queue.submit("noop", priority=0), queue.submit("noop", priority=9)
    for job in _lease(queue, 2):
        queue.leases.fail([Nack(job.id, 1, "x", True, 0)])
    assert [j.id for j in _lease(queue, 2)] == [high, low]


def test_retention_keeps_only_the_newest_completed(make_queue) -> None:
    from jobsim import Retention

    queue = make_queue(QueueConfig(retention=Retention(max_completed=3)))
    ids = [queue.submit("noop") for _ in range(5)]
    for job in _lease(queue, 5):
        queue.leases.complete([Ack(job.id, job.token)])
    assert queue.job_ids("completed") == ids[2:]
    assert not queue.client.exists(queue.keys.job(ids[0]))


def test_replayed_submit_is_a_no_op_but_a_conflicting_one_is_refused(make_queue) -> None:
    """A client retrying a submit after a lost reply must not fail or double-count."""
    from jobsim import JobRequest
    from jobsim.errors import InvalidInputError

    queue = make_queue()
    batch = [JobRequest("noop", {"n": i}, job_id=f"j{i}") for i in range(3)]
    assert queue.submit_many(batch) == ["j0", "j1", "j2"]
    assert queue.submit_many(batch) == ["j0", "j1", "j2"]
    assert queue.stats().totals["submitted"] == 3 and queue.stats().queued == 3
    with pytest.raises(InvalidInputError, match="j1"):
        queue.submit("noop", {"n": 99}, job_id="j1")


def test_replayed_ack_and_fail_are_counted_as_replays_not_fenced(make_queue) -> None:
    queue = make_queue()
    done, failed = queue.submit("noop"), queue.submit("noop", max_retries=0)
    _lease(queue, 2)
    for _ in range(2):
        assert queue.leases.complete([Ack(done, 1)]) == []
        assert queue.leases.fail([Nack(failed, 1, "boom", True, 0)]) == []
    assert queue.status(done).fenced == 0 and queue.status(failed).fenced == 0
    assert queue.stats().totals.get("fenced", 0) == 0
    assert queue.stats().totals["replayed"] == 2
    assert queue.stats().totals["completed"] == 1 and queue.stats().totals["failed"] == 1


def test_late_ack_after_lease_expiry_is_fenced(make_queue) -> None:
    queue = make_queue(QueueConfig(lease=Lease(duration_s=0.05)))
    job_id = queue.submit("noop", max_retries=2)
    _lease(queue, worker="slow")
    time.sleep(0.08)
    (again,) = _lease(queue, worker="fast")
    assert queue.leases.complete([Ack(job_id, 1)]) == [job_id]  # the slow worker's late ack
    assert queue.leases.complete([Ack(job_id, again.token)]) == []
    job = queue.status(job_id)
    assert (job.status, job.fenced, job.redeliveries) == ("completed", 1, 1)


def test_unlease_puts_never_started_jobs_back_in_place_uncounted(make_queue) -> None:
    queue = make_queue()
    ids = [queue.submit("noop") for _ in range(3)]
    before = {i: queue.client.zscore(queue.keys.queued, i) for i in ids}
    jobs = _lease(queue, 2)
    assert queue.leases.unlease(jobs) == 2
    assert queue.leases.unlease(jobs) == 0  # no longer held
    for job_id in ids:
        job = queue.status(job_id)
        assert (job.status, job.attempts, job.attempt_log) == ("queued", 0, [])
        assert queue.client.zscore(queue.keys.queued, job_id) == before[job_id]
    assert [j.id for j in _lease(queue, 3)] == ids


def test_dequeue_settles_results_in_the_same_round_trip(make_queue) -> None:
    queue = make_queue()
    a, b, c = (queue.submit("noop", max_retries=0) for _ in range(3))
    _lease(queue, 2)
    exchange = queue.leases.exchange("w", 1, done=[Ack(a, 1, "7")], failed=[Nack(b, 1, "boom")])
    assert [j.id for j in exchange.jobs] == [c] and exchange.fenced == []
    assert queue.status(a).result == 7 and queue.status(b).status == "failed"


def test_attempt_log_can_be_switched_off(make_queue) -> None:
    queue = make_queue(QueueConfig(attempt_log=False))
    job_id = queue.submit("noop")
    (job,) = _lease(queue)
    queue.leases.complete([Ack(job_id, job.token)])
    fields = queue.client.hgetall(queue.keys.job(job_id))
    assert fields["status"] == "completed" and not any(
        k[0] in "sewox" and k[1:].isdigit() for k in fields
    )


def test_replayed_fail_after_the_job_moved_on_is_not_fenced(make_queue) -> None:
    """A zero-backoff failure lets the job be leased again at once; the failing worker's
    replay (lost reply, client retry) must still be recognised."""
    queue = make_queue(QueueConfig(retry=RetryPolicy.immediate()))
    job_id = queue.submit("noop", max_retries=2)
    _lease(queue)
    failure = Nack(job_id, 1, "boom", True, 0)
    assert queue.leases.fail([failure]) == []
    (again,) = _lease(queue)
    assert (again.attempt, again.token) == (2, 2)
    assert queue.leases.fail([failure]) == []
    assert queue.status(job_id).fenced == 0


def test_settlement_values_follow_their_scripts_declared_items() -> None:
    """The Python values that cross the seam flatten in the order the Lua reads them."""
    from dataclasses import fields

    from jobsim.scripts import COMPLETE, DEQUEUE, FAIL, LEASED, RELEASE, Dequeued, GiveBack

    assert tuple(f.name for f in fields(Ack)) == COMPLETE.items
    assert tuple(f.name for f in fields(Nack)) == FAIL.items
    assert tuple(f.name for f in fields(GiveBack)) == RELEASE.items
    assert "ACK_ITEMS" in DEQUEUE.source and "NACK_ITEMS" in DEQUEUE.source
    assert {f.name for f in fields(Dequeued)} == set(LEASED) - {"delay_us"} | {"previous_delay_s"}


def test_each_script_carries_only_the_prelude_helpers_it_needs() -> None:
    """SUBMIT gets enqueue and what enqueue calls (next_seq, fmt), not the settling helpers;
    DEQUEUE, which settles, gets every settling helper."""
    from jobsim.scripts import DEQUEUE, PRELUDE, SUBMIT
    from jobsim.scripts.lua import prelude_for

    submit = prelude_for(SUBMIT.body)
    for needed in ("function enqueue", "function next_seq", "function fmt", "local NOW"):
        assert needed in submit
    for unneeded in ("function complete_one", "function refuse", "function retain"):
        assert unneeded not in submit
    dequeue = prelude_for(DEQUEUE.body)
    for name in ("complete_one", "fail_one", "give_back", "retain", "refuse", "lease_of"):
        assert f"local function {name}(" in dequeue and f"local function {name}(" in PRELUDE
