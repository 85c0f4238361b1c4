"""Exact at-least-once: fencing tokens are never reused, every script's replay rules (the
table in jobsim.scripts) hold cell by cell, and the books a crash or a client leaves behind
stay exact. Each test runs on fakeredis and on a real redis-server."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobsim import JobQueue, JobRequest, Lease, QueueConfig, RetryPolicy, WorkerPool, connect
from jobsim.errors import InvalidInputError
from jobsim.scripts import Ack, Dequeued, GiveBack, Nack
from tests.support.backends import backend_url
from tests.support.proxy import ReplyDroppingProxy


def _lease(queue: JobQueue, worker: str = "w", count: int = 1) -> list[Dequeued]:
    return queue.leases.exchange(worker, count).jobs


def _totals(queue: JobQueue) -> dict[str, int]:
    return queue.stats().totals


def test_a_lease_token_is_never_handed_out_twice_even_after_unlease(make_queue) -> None:
    """UNLEASE takes the attempt back but never the token: a second UNLEASE of the same
    lease (a SIGTERMed child and then its parent) cannot take the job from its next holder,
    whose ack is accepted while the stale holder's is fenced."""
    queue = make_queue()
    job_id = queue.submit("noop")
    (first,) = _lease(queue, "child")
    assert queue.leases.unlease([first]) == 1
    (second,) = _lease(queue, "other")
    assert second.id == job_id and second.attempt == first.attempt == 1
    assert second.token > first.token
    assert queue.leases.unlease([first]) == 0  # the parent's repeat: a no-op
    job = queue.status(job_id)
    assert (job.status, job.worker, job.attempts) == ("processing", "other", 1)
    assert queue.leases.complete([Ack(job_id, first.token)]) == [job_id]
    assert queue.leases.complete([Ack(job_id, second.token)]) == []
    job = queue.status(job_id)
    assert (job.status, job.fenced) == ("completed", 1)
    assert _totals(queue)["fenced"] == 1 and _totals(queue)["replayed"] == 1


# --- the replay table, cell by cell ---------------------------------------------------------

Call = Callable[[JobQueue, Dequeued], Any]

CALLS: dict[str, tuple[Call, str]] = {
    # call -> (how to make it, the counter a refused call bumps)
    "ack": (lambda q, j: q.leases.complete([Ack(j.id, j.token)]), "fenced"),
    "fail": (lambda q, j: q.leases.fail([Nack(j.id, j.token, "boom")]), "fenced"),
    "heartbeat": (lambda q, j: q.leases.heartbeat("w", [(j.id, j.token)], ""), "stale"),
    "unlease": (lambda q, j: q.leases.unlease([j]), "stale"),
    "release": (
        lambda q, j: q.leases.release([GiveBack(j.id, j.token, "crashed", "gone")]),
        "stale",
    ),
}

# what the call does to a job whose lease it holds: (status, attempts) afterwards
APPLIED = {
    "ack": ("completed", 1),
    "fail": ("retrying", 1),
    "heartbeat": ("processing", 1),
    "unlease": ("queued", 0),
    "release": ("queued", 1),
}


def _state(queue: JobQueue, job_id: str) -> tuple[str, int]:
    job = queue.status(job_id)
    return job.status.value, job.attempts


@pytest.mark.parametrize("call", CALLS)
def test_a_call_holding_the_lease_applies(make_queue, call: str) -> None:
    queue = make_queue(QueueConfig(retry=RetryPolicy(kind="fixed", base_s=60.0, cap_s=60.0)))
    job_id = queue.submit("noop", max_retries=2)
    (job,) = _lease(queue)
    CALLS[call][0](queue, job)
    assert _state(queue, job_id) == APPLIED[call]
    assert "replayed" not in _totals(queue) and "stale" not in _totals(queue)


@pytest.mark.parametrize("call", [c for c in CALLS if c != "heartbeat"])
def test_the_same_call_made_again_is_a_counted_replay(make_queue, call: str) -> None:
    """A call re-sent after a lost reply changes nothing more and counts as a replay."""
    queue = make_queue(QueueConfig(retry=RetryPolicy(kind="fixed", base_s=60.0, cap_s=60.0)))
    job_id = queue.submit("noop", max_retries=2)
    (job,) = _lease(queue)
    make, _ = CALLS[call]
    make(queue, job)
    record = queue.client.hgetall(queue.keys.job(job_id))
    make(queue, job)
    assert queue.client.hgetall(queue.keys.job(job_id)) == record
    assert _totals(queue)["replayed"] == 1
    assert "fenced" not in _totals(queue) and "stale" not in _totals(queue)


def test_a_repeated_heartbeat_only_extends_again(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("noop")
    (job,) = _lease(queue)
    for _ in range(3):
        assert queue.leases.heartbeat("w", [(job_id, job.token)], "") == []
    assert _state(queue, job_id) == ("processing", 1)
    assert "stale" not in _totals(queue)


def _stale_after_new_lease(queue: JobQueue, job: Dequeued) -> None:
    """The lease was given back (its worker died) and the job leased again, newer token."""
    queue.leases.release_worker("w", "crashed", "gone")
    (again,) = _lease(queue, "other")
    assert again.token == job.token + 1


def _stale_settled_otherwise(queue: JobQueue, job: Dequeued) -> None:
    """The lease ended another way (here: completed by its holder)."""
    queue.leases.complete([Ack(job.id, job.token)])


def _stale_job_gone(queue: JobQueue, job: Dequeued) -> None:
    """The job no longer exists (purged, or dropped by retention)."""
    queue.client.delete(queue.keys.job(job.id))
    queue.client.zrem(queue.keys.processing, job.id)


STALE = {
    "leased-again": _stale_after_new_lease,
    "settled-otherwise": _stale_settled_otherwise,
    "job-gone": _stale_job_gone,
}


@pytest.mark.parametrize("situation", STALE)
@pytest.mark.parametrize("call", CALLS)
def test_a_call_not_holding_the_lease_changes_nothing_and_is_counted(
    make_queue, call: str, situation: str
) -> None:
    queue = make_queue()
    job_id = queue.submit("noop", max_retries=2)
    (job,) = _lease(queue)
    if call == "ack" and situation == "settled-otherwise":
        queue.leases.fail([Nack(job.id, job.token, "boom")])  # settled, but not by an ack
    else:
        STALE[situation](queue, job)
    before = queue.client.hgetall(queue.keys.job(job_id))
    before_queues = [queue.client.zrange(k, 0, -1) for k in (queue.keys.queued,)]
    totals = _totals(queue)
    make, counter = CALLS[call]
    if situation == "job-gone":
        counter = "stale"  # nothing left to tell a replay from a stale call
    make(queue, job)
    assert queue.client.hgetall(queue.keys.job(job_id)).items() - before.items() <= {
        ("fenced", str(int(before.get("fenced", 0)) + 1))
    }
    assert [queue.client.zrange(k, 0, -1) for k in (queue.keys.queued,)] == before_queues
    after = _totals(queue)
    assert after.get(counter, 0) == totals.get(counter, 0) + 1
    assert after.get("replayed", 0) == totals.get("replayed", 0)
    if counter == "fenced" and situation != "job-gone":
        assert queue.status(job_id).fenced == 1


def test_dequeue_sent_again_with_its_request_id_leases_once(make_queue) -> None:
    """A DEQUEUE re-sent after a lost reply returns the first reply: the jobs are leased
    once, nobody is charged an attempt they never had, and results it carried settle once."""
    queue = make_queue()
    done_id = queue.submit("noop")
    (done,) = _lease(queue)
    ids = queue.submit_many([JobRequest("noop")] * 3)
    ack = [Ack(done_id, done.token, "1")]
    first = queue.leases.exchange("w", 2, ack, request_id="r-1")
    again = queue.leases.exchange("w", 2, ack, request_id="r-1")
    assert (again.jobs, again.fenced) == (first.jobs, first.fenced)
    assert [j.id for j in first.jobs] == ids[:2]
    assert again.now_us >= first.now_us  # the clock of the reply, for the worker's anchor
    assert [queue.status(i).attempts for i in ids] == [1, 1, 0]
    assert queue.stats().totals["completed"] == 1 and queue.stats().queued == 1
    assert _totals(queue)["replayed"] == 1
    fresh = queue.leases.exchange("w", 2, request_id="r-2")  # a new call leases anew
    assert [j.id for j in fresh.jobs] == ids[2:]


def test_requeue_and_purge_sent_again_have_the_effect_of_one_call(make_queue) -> None:
    queue = make_queue()
    ids = [queue.submit("noop", max_retries=0) for _ in range(3)]
    for job in _lease(queue, count=3):
        queue.leases.fail([Nack(job.id, job.token, "x")])
    scripts = queue._scripts
    assert scripts.requeue_dead(queue.config.band_us, [ids[0]]) == [ids[0]]
    # the same call again (same request id) is what redis-py sends after a lost reply
    request = "same-request"
    from jobsim.scripts import REQUEUE_DEAD

    keys = REQUEUE_DEAD.key_names(queue.keys, queue.keys.reply(request))
    args = [request, queue.config.band_us, 0, 0, ids[1]]
    sha = scripts._sha["REQUEUE_DEAD"]
    queue.client.eval(REQUEUE_DEAD.source, len(keys), *keys, *args)
    assert queue.client.evalsha(sha, len(keys), *keys, *args) == [ids[1]]  # no NOTDEAD error
    job = queue.status(ids[1])
    assert (job.status, job.requeues) == ("queued", 1)
    assert queue.stats().totals["requeued"] == 2


def test_a_requeued_dead_letter_starts_its_backoff_afresh(make_queue) -> None:
    """requeue_dead promises a fresh allowance: the retry policy counts attempts from the
    requeue again, and the decorrelated jitter forgets the old delay."""
    queue = make_queue(QueueConfig(retry=RetryPolicy(kind="exponential", base_s=1.0, cap_s=1e4)))
    job_id = queue.submit("noop", max_retries=2)
    for _ in range(3):
        queue.client.zadd(queue.keys.retrying, {job_id: 0})  # due now
        (job,) = _lease(queue)
        backoff = queue.config.retry.delay_s(job.backoff_attempt, rng=__import__("random").Random())
        queue.leases.fail([Nack(job_id, job.token, "x", True, round(backoff * 1e6))])
    assert queue.status(job_id).status == "failed"
    queue.requeue_dead(job_id)
    (job,) = _lease(queue)
    assert (job.attempt, job.backoff_attempt, job.previous_delay_s) == (4, 1, None)
    assert queue.config.retry.delay_s(job.backoff_attempt, rng=__import__("random").Random()) == 1.0


def test_a_batch_of_any_size_is_all_or_nothing_against_a_racing_submit(make_queue) -> None:
    """submit_many of 3,000 custom ids races a client submitting one of those ids: either
    the whole batch lands (and the racer is refused) or none of it does."""
    queue = make_queue()
    for trial in range(4):
        ids = [f"t{trial}-{i}" for i in range(3000)]
        clash = ids[2500]
        stop = threading.Event()

        def race(clash: str = clash, first: str = ids[0], stop: threading.Event = stop) -> None:
            # strike the moment any of the batch is visible: a batch written in chunks
            # would be half written then
            while not stop.is_set() and not queue.client.exists(queue.keys.job(first)):
                pass
            with contextlib.suppress(InvalidInputError):  # the batch got there first
                queue.submit("noop", {"racer": True}, job_id=clash)

        racer = threading.Thread(target=race)
        racer.start()
        try:
            queue.submit_many(JobRequest("noop", {"i": i}, job_id=j) for i, j in enumerate(ids))
            won = True
        except InvalidInputError:
            won = False
        stop.set()
        racer.join()
        pipe = queue.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.exists(queue.keys.job(job_id))
        present = sum(pipe.execute())
        assert present == (3000 if won else 1), (trial, won, present)


def test_a_batch_over_the_limit_is_refused_before_anything_is_written(make_queue) -> None:
    from jobsim.requests import MAX_BATCH_JOBS

    queue = make_queue()
    with pytest.raises(InvalidInputError, match="at most"):
        queue.submit_many([JobRequest("noop")] * (MAX_BATCH_JOBS + 1))
    assert queue.stats().totals == {}


# --- lost replies, through a proxy that drops them after Redis ran the call ---------------


@pytest.fixture
def lossy(backend: str, request: pytest.FixtureRequest) -> Iterator[tuple[ReplyDroppingProxy, str]]:
    """A proxy in front of this test's backend, and a queue name."""
    with ReplyDroppingProxy.for_url(backend_url(backend, request)) as proxy:
        yield proxy, f"lossy-{uuid.uuid4().hex[:6]}"


def test_a_dequeue_whose_reply_is_lost_leases_once(lossy) -> None:
    """redis-py re-sends a DEQUEUE whose reply the network lost: the re-send returns the
    kept reply, so no job is leased to nobody and charged an attempt it never had."""
    proxy, name = lossy
    queue = JobQueue(connect(proxy.url), name)
    ids = queue.submit_many([JobRequest("noop", max_retries=0)] * 6)
    queue.leases.exchange("w", 0)  # loads the script: the reply lost is DEQUEUE's own
    proxy.drop_next_replies(1, commands=("EVALSHA",))
    first = queue.leases.exchange("w", 3, request_id="lost-once")
    assert proxy.dropped == 1
    assert [j.id for j in first.jobs] == ids[:3]
    assert [queue.status(i).attempts for i in ids] == [1, 1, 1, 0, 0, 0]
    assert queue.stats().processing == 3 and queue.stats().totals["replayed"] == 1


def test_a_pool_behind_a_lossy_network_runs_each_job_once_per_counted_attempt(lossy) -> None:
    """Thread workers whose replies are lost one in five: every job completes, none is
    charged an attempt it did not run, and max_retries=0 jobs are never dead-lettered."""
    proxy, name = lossy
    queue = JobQueue(connect(proxy.url), name, QueueConfig(lease=Lease(duration_s=2.0)))
    ids = queue.submit_many([JobRequest("noop", max_retries=0)] * 300)
    queue.leases.exchange("w", 0)  # loads the script
    proxy.drop_probability(0.2, seed=4, commands=("EVALSHA",))
    with WorkerPool(queue, concurrency=3, prefetch_s=0):  # a round trip per job
        queue.wait_until_drained(timeout_s=60)
    proxy.stop_dropping()
    assert proxy.dropped >= 20  # of about 300 leasing calls
    jobs = queue.get_many(ids)
    assert [j.status for j in jobs] == ["completed"] * 300
    assert all(j.attempts == 1 and j.redeliveries == 0 for j in jobs)
