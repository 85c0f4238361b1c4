"""Hostile review of the exact-at-least-once core (fencing tokens, replays, the process
slot, retention). Each test names a defect and fails until it is fixed. Each queue test
runs on fakeredis and on a real redis-server; Redis is never mocked. Where a race or a
SIGKILL window is too narrow to hit on demand, the test builds, with the real scripts and
the real pool code, the exact state that window leaves behind.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from jobsim import JobQueue, JobRequest, QueueConfig, Retention, RetryPolicy, WorkerPool
from jobsim.procs import CONTEXT, Child, ChildSpec, Slot
from jobsim.scripts import Ack, Nack
from jobsim.worker import Holdings, Running, ThreadWorker


def _totals(queue: JobQueue) -> dict[str, int]:
    return queue.stats().totals


# --- 1. timeout enforcement gives back a healthy job that started meanwhile ----------------


def test_timeout_enforcement_racing_a_job_end_does_not_give_back_the_next_running_job(
    make_queue,
) -> None:
    """pool._enforce_thread_timeouts reads ``thread.running`` (job A, past its deadline),
    then calls ``take_holdings()``. If A finished and the thread started job B in between,
    the ``else`` branch calls ``_take_back(outcome="")`` with ``holdings.running = B``, which
    RELEASEs B, a healthy job still running: B is queued again (it will run twice) and its
    attempt log gets outcome '' (``o<n> = ''``), after which ``queue.status(B)`` raises
    (``Outcome('')`` is not an Outcome) and a counter named '' appears in the totals."""
    queue = make_queue()
    a_id, b_id = queue.submit_many([JobRequest("noop"), JobRequest("noop")])
    pool = WorkerPool(queue, 1, name="race")
    worker = ThreadWorker(pool, 0)
    a, b = queue.leases.exchange(worker.worker_id, 2).jobs
    worker.running = Running(a, deadline=time.monotonic() - 1.0, timeout_s=0.01)
    real_take = worker.take_holdings

    def take_holdings_after_a_ended_and_b_started() -> Holdings:
        # what the worker thread did between the supervisor's two reads
        with worker._lock:
            worker._done.append(Ack(a.id, a.token))
            worker.running = Running(b, deadline=None, timeout_s=None)
        return real_take()

    worker.take_holdings = take_holdings_after_a_ended_and_b_started  # type: ignore[method-assign]
    pool._threads = [worker]
    pool._enforce_thread_timeouts(time.monotonic())

    assert queue.status(a_id).status == "completed"
    raw = queue.client.hgetall(queue.keys.job(b_id))
    assert raw["status"] == "processing", (
        f"B was given back while its worker still runs it: {raw['status']}, "
        f"o1={raw.get('o1')!r}, totals={_totals(queue)}"
    )
    assert "" not in _totals(queue), "a counter named '' was created"
    queue.status(b_id)  # raises ValueError when o1 == '' ('' is not a valid Outcome)


# --- 2. a worker process SIGKILLed inside a slot update wedges its parent -------------------


def _take_the_slot_lock_and_die(slot: Slot) -> None:
    """A worker process SIGKILLed inside Slot.taken()/started()/finished()/batch()."""
    slot._lock.acquire()
    os.kill(os.getpid(), signal.SIGKILL)


def test_parent_is_not_wedged_by_a_child_sigkilled_while_holding_its_slot_lock(
    make_queue,
) -> None:
    """Slot uses a plain multiprocessing Lock, which nobody releases when its holder is
    SIGKILLed. The parent's supervisor then blocks forever in ``slot.holdings()`` (from
    ``_watch_children``, holding ``_children_lock``): no child is reaped or respawned, no
    timeout enforced, and ``pool.stop()`` hangs on ``_children_lock``. (``spawn()`` of a
    replacement calls ``slot.clear()``, which blocks on the same lock.)"""
    queue = make_queue()
    pool = WorkerPool(queue, 1, "process", name="wedge")
    spec = ChildSpec(
        url="redis://unused", queue_name=queue.name, config=queue.config, modules=[],
        pool_name=pool.id, job_timeout_s=None, prefetch_s=0.0, seed=0,
    )  # fmt: skip
    child = Child(pool.id, 0, spec)
    child.generation = 0
    child.process = CONTEXT.Process(target=_take_the_slot_lock_and_die, args=(child.slot,))
    child.process.start()
    child.process.join(30)
    assert child.process.exitcode == -signal.SIGKILL
    pool._children = [child]

    supervisor = threading.Thread(
        target=pool._watch_children, args=(time.monotonic(),), daemon=True
    )
    supervisor.start()
    supervisor.join(5.0)
    assert not supervisor.is_alive(), (
        "the supervisor is blocked forever on the dead child's slot lock"
    )


# --- 3. SIGKILL between DEQUEUE's reply and Slot.batch: a never-run job is charged ----------


def test_leases_a_killed_child_never_reported_are_not_charged_an_attempt(make_queue) -> None:
    """A child writes its new batch to the slot only after DEQUEUE returns (and not at all
    while a DEQUEUE's reply is lost and being re-sent). SIGKILLed in that window, its slot
    still shows the previous, settled batch; the parent's catch-all RELEASE_WORKER then gives
    back the new leases as 'crashed' with the attempt counted, though no job of the new
    batch was ever taken (``batch()`` always precedes ``taken()``). With max_retries=0 the
    job is dead-lettered without ever having run."""
    queue = make_queue()
    prev_id = queue.submit("noop")
    never_run = queue.submit("noop", max_retries=0)
    pool = WorkerPool(queue, 1, "process", name="kill")
    slot, worker_id = Slot(), "kill-p0.0-0"
    (prev,) = queue.leases.exchange(worker_id, 1).jobs
    slot.batch([prev])
    slot.taken(prev)
    slot.finished()
    # The round trip that settles `prev` and leases the next job; the child dies before
    # (or while re-sending, so before) it reports the new batch.
    (new,) = queue.leases.exchange(worker_id, 1, done=[Ack(prev.id, prev.token)]).jobs
    assert new.id == never_run
    # exactly what _watch_children does for a dead child
    pool._take_back(worker_id, slot.holdings(), outcome="crashed", error="killed", catch_all=True)
    assert queue.status(prev_id).status == "completed"
    job = queue.status(never_run)
    assert (job.status, job.attempts) == ("queued", 0), (
        f"a job the child never took was charged: status={job.status} "
        f"attempts={job.attempts} log={[a.outcome.value for a in job.attempt_log]}"
    )


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
    assert totals.get("fenced", 0) == 0 and totals["replayed"] == 2, totals


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


# --- 6. default retention silently ends submit's idempotency --------------------------------


def test_resubmitting_a_job_id_after_default_retention_does_not_run_it_again(
    make_queue,
) -> None:
    """``submit(job_id=...)`` promises "submitting the same id with the same task and
    payload again is a no-op, so a submit is safe to retry". Retention used to default to
    keep-everything; it now defaults to 10,000 completed records, swept on every DEQUEUE.
    Once 10,000 later jobs complete, a producer's retry of the same submit (e.g. a POST
    /submit retried by an HTTP client) creates the job afresh and it runs a second time."""
    queue = make_queue()  # the default QueueConfig
    queue.submit("noop", job_id="order-42")
    (job,) = queue.leases.exchange("w", 1).jobs
    queue.leases.exchange("w", 0, done=[Ack(job.id, job.token)])
    queue.submit_many([JobRequest("noop")] * 10_000)
    for _ in range(10):
        leased = queue.leases.exchange("w", 1000).jobs
        queue.leases.exchange("w", 0, done=[Ack(j.id, j.token) for j in leased])
    queue.submit("noop", job_id="order-42")  # the producer's retry
    assert queue.stats().queued == 0, "a completed job was queued to run again"


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
