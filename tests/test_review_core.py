"""Hostile review of the exact-at-least-once core (fencing tokens, replays, the process
slot, retention). Each test names a defect and fails until it is fixed. Each queue test
runs on fakeredis and on a real redis-server; Redis is never mocked. Where a race or a
SIGKILL window is too narrow to hit on demand, the test builds, with the real scripts and
the real pool code, the exact state that window leaves behind.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from jobsim import JobQueue, JobRequest, QueueConfig, Retention, RetryPolicy
from jobsim.books import Running
from jobsim.pool_settings import PoolSettings
from jobsim.procs import CONTEXT, Child, ChildSpec, ProcessGroup, Slot
from jobsim.scripts import Ack, GiveBack, Nack
from jobsim.threads import ThreadGroup
from jobsim.worker import ThreadWorker


def _totals(queue: JobQueue) -> dict[str, int]:
    return queue.stats().totals


# --- 1. timeout enforcement gives back a healthy job that started meanwhile ----------------


def test_timeout_enforcement_racing_a_job_end_does_not_give_back_the_next_running_job(
    make_queue,
) -> None:
    """The supervisor reads ``thread.running`` (job A, past its deadline) and then takes the
    worker's leases. If A finished and the thread started job B in between, taking them
    anyway would give B back while its thread still runs it (B would run twice). The books
    hand the leases over only while A is still the running job."""
    queue = make_queue()
    a_id, b_id = queue.submit_many([JobRequest("noop"), JobRequest("noop")])
    group = ThreadGroup(queue, PoolSettings(concurrency=1), "race")
    worker = ThreadWorker(group, 0)
    a, b = queue.leases.exchange(worker.worker_id, 2).jobs
    seen_by_supervisor = Running(a, deadline=time.monotonic() - 1.0, timeout_s=0.01)
    worker.running = seen_by_supervisor
    # what the worker thread did between the supervisor's two reads
    worker.running = Running(b, deadline=None, timeout_s=None)
    assert worker.take_holdings_if_running(seen_by_supervisor) is None
    assert worker.leases() == [(b.id, b.token)]
    raw = queue.client.hgetall(queue.keys.job(b_id))
    assert raw["status"] == "processing"
    with pytest.raises(ValueError):  # and no lease is ever given back without an outcome
        GiveBack(b.id, b.token, "", "")
    assert queue.status(a_id).status == "processing"


# --- 2. a worker process SIGKILLed inside a slot update wedges its parent -------------------


def _die_mid_write(slot: Slot) -> None:
    """A worker process SIGKILLed in the middle of a slot update."""
    slot._version.value += 1  # a write has begun
    os.kill(os.getpid(), signal.SIGKILL)


def test_parent_is_not_wedged_by_a_child_sigkilled_mid_slot_update(make_queue) -> None:
    """The slot holds no lock a SIGKILL could leave held: a torn write is seen as torn at
    once, and the parent falls back to giving back every lease under the child's id."""
    queue = make_queue()
    slot = Slot()
    process = CONTEXT.Process(target=_die_mid_write, args=(slot,))
    process.start()
    process.join(30)
    assert process.exitcode == -signal.SIGKILL
    started = time.monotonic()
    assert slot.holdings() is None and slot.running() is None
    assert time.monotonic() - started < 2.0
    del queue


# --- 3. SIGKILL between DEQUEUE's reply and Slot.batch: a never-run job is charged ----------


def test_leases_a_killed_child_never_reported_are_not_charged_an_attempt(make_queue) -> None:
    """A child writes its new batch to the slot only after DEQUEUE returns; SIGKILLed in
    between, its slot still shows the previous, settled batch. The parent finds the new
    leases in the reply Redis kept for the child's last leasing call and puts them back
    uncounted (``batch()`` always precedes ``taken()``), instead of charging an attempt, which
    with max_retries=0 would dead-letter a job that never ran."""
    queue = make_queue()
    prev_id = queue.submit("noop")
    never_run = queue.submit("noop", max_retries=0)
    group = ProcessGroup(queue, PoolSettings(concurrency=1), "kill")
    child = Child("kill", 0, ChildSpec("unused", queue.name, queue.config, [], "kill",
                                       PoolSettings(concurrency=1)))  # fmt: skip
    child.generation = 0
    worker_id = child.worker_id
    (prev,) = queue.leases.exchange(worker_id, 1, request_id="r1").jobs
    child.slot.batch([prev])
    child.slot.taken(prev)
    child.slot.finished()
    # the round trip that settles `prev` and leases the next job; the child dies before it
    # reports the new batch
    exchange = queue.leases.exchange(worker_id, 1, done=[Ack(prev.id, prev.token)], request_id="r2")
    assert [j.id for j in exchange.jobs] == [never_run]
    group.take_back_child(child, "crashed", "killed")  # what the supervisor does
    assert queue.status(prev_id).status == "completed"
    job = queue.status(never_run)
    assert (job.status, job.attempts) == ("queued", 0)


# --- 4. a replayed settlement whose record retention swept counts as a duplicate ------------


def test_a_resent_settle_only_dequeue_is_a_replay_even_after_retention_swept_the_record(
    make_queue,
) -> None:
    """A settling round trip (DEQUEUE with count 0, as the worker's stale-results path and
    the supervisor's _take_back send it) keeps no reply; redis-py re-sends it after a lost
    reply. The first run acked both jobs and, with max_completed=1, swept the first one's
    record in the same call, so the re-send finds no record and counts the ack as
    ``fenced``, "a certain duplicate execution", which never happened (and the worker logs
    'late result ... was fenced')."""
    queue = make_queue(QueueConfig(retention=Retention(max_completed=1, max_age_s=None)))
    queue.submit_many([JobRequest("noop"), JobRequest("noop")])
    a, b = queue.leases.exchange("w", 2).jobs
    acks = [Ack(a.id, a.token), Ack(b.id, b.token)]
    first = queue.leases.exchange("w", 0, done=acks, request_id="r1")
    again = queue.leases.exchange("w", 0, done=acks, request_id="r1")  # redis-py's re-send
    assert first.fenced == []
    totals = _totals(queue)
    assert again.fenced == [], f"a replayed ack reported as fenced: {again.fenced}"
    # the swept record cannot tell a replay from a stale call: counted stale, never fenced
    assert totals.get("fenced", 0) == 0 and totals["replayed"] == 1 and totals["stale"] == 1


# --- 5. `settled` remembers only the last settlement: later replays look fenced -------------


def test_a_fail_resent_after_the_retry_already_ran_is_a_replay_not_fenced(make_queue) -> None:
    """FAIL of lease t1 (default 50 ms backoff; here 0) loses its reply and redis-py re-sends
    it (its own backoff goes up to 1 s, five times). Meanwhile the retry was leased as t2 and
    completed, overwriting ``settled = t1:f`` with ``t2:c``. The re-sent FAIL is then
    counted ``fenced`` on the queue and on the job (a "certain duplicate execution") though
    the attempt ran once; the same holds for any replay once the job settles again."""
    queue = make_queue(QueueConfig(retry=RetryPolicy(kind="fixed", base_s=0.0)))
    job_id = queue.submit("noop", max_retries=3)
    (t1,) = queue.leases.exchange("w1", 1).jobs
    nack = Nack(job_id, t1.token, "boom", True, 0)
    queue.leases.fail([nack])
    (t2,) = queue.leases.exchange("w2", 1).jobs  # the retry, promoted and leased
    queue.leases.exchange("w2", 0, done=[Ack(job_id, t2.token)])
    assert queue.leases.fail([nack]) == [], "the re-sent FAIL was reported fenced"
    job = queue.status(job_id)
    assert job.fenced == 0 and _totals(queue).get("fenced", 0) == 0


# --- 7. REQUEUE_DEAD is not all-or-nothing when a record is missing -------------------------


def test_requeue_dead_is_all_or_nothing_when_a_dead_record_is_missing(make_queue) -> None:
    """REQUEUE_DEAD says "All or nothing" and checks only ZSCORE dead; a dead letter whose
    hash is gone (evicted under maxmemory, deleted by hand, or by ``queue.delete()`` racing)
    passes the check and the script dies on ``tonumber(nil)`` mid-batch. Redis keeps the
    writes made before a script error, so the jobs before it are moved to the queue but not
    counted as requeued, the clock is not saved and nobody is woken, and the caller gets a
    raw Lua error instead of JobNotFoundError."""
    queue = make_queue()
    ids = queue.submit_many([JobRequest("noop", max_retries=0, job_id=f"d{i}") for i in (1, 2, 3)])
    leased = queue.leases.exchange("w", 3).jobs
    queue.leases.fail([Nack(j.id, j.token, "boom", False) for j in leased])
    assert queue.stats().failed == 3
    queue.client.delete(queue.keys.job(ids[1]))  # d2's record is gone (ties sort by id)
    try:
        queue.requeue_all_dead()
    except Exception as exc:  # the defect is which error, and what it left
        error: Exception | None = exc
    else:
        error = None
    stats = queue.stats()
    moved = stats.queued
    assert moved in (0, 2) and stats.totals.get("requeued", 0) == moved, (
        f"half-applied: {moved} moved to the queue, requeued counter "
        f"{stats.totals.get('requeued', 0)}, error {error!r}"
    )
