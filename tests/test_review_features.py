"""A hostile review of issue 12's features as landed on main: delayed and scheduled jobs,
pause and resume, per-task rate and concurrency limits.

Each test tries to break one guarantee (no job lost, priorities honoured, transitions safe to
re-send, bad input refused with nothing written, limits freed exactly once, every job in
exactly one listing). A test marked ``xfail(strict=True)`` is a bug found by this review: it
fails today, and its reason names what is wrong; the others stay as regression tests.
Every queue test runs on fakeredis and on a real redis-server.
"""

from __future__ import annotations

import contextlib
import math
import random
import uuid
from collections.abc import Iterator

import pytest
import redis

import jobsim
import tests.support.cancel_tasks  # noqa: F401  (registers cancel_coop)
from jobsim import JobQueue, JobRequest, Lease, QueueConfig, RateLimit, Retention, connect
from jobsim.connection import server_time_s
from jobsim.errors import InvalidInputError, JobsimError
from jobsim.models import JobStatus
from jobsim.scripts import Ack, Nack
from tests.support.backends import backend_url
from tests.support.proxy import ReplyDroppingProxy
from tests.support.waiting import wait_until

SLOW = RateLimit(per_s=0.001, burst=1)  # one token now, the next in 1,000 s


def _snapshot(client: redis.Redis) -> dict[str, object]:
    """Every key and its dumped value: equal before and after means nothing was written."""
    return {key: client.dump(key) for key in client.scan_iter(match="*")}


def _listings(queue: JobQueue) -> dict[str, list[str]]:
    return {s.value: queue.job_ids(s, limit=10_000) for s in JobStatus}


def _assert_each_job_listed_once(queue: JobQueue, ids: list[str]) -> None:
    """Each job is in exactly one status listing, the one its record names, and the stats
    count what the listings hold."""
    listings = _listings(queue)
    where = {i: [s for s, members in listings.items() if i in members] for i in ids}
    assert {i: len(w) for i, w in where.items()} == dict.fromkeys(ids, 1)
    for job in queue.get_many(ids):
        assert where[job.id] == [job.status], job.id
    stats = queue.stats()
    for status, members in listings.items():
        assert getattr(stats, status) == len(members), status


# --- bad input: a JobsimError, nothing written ---------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delay_s": -1},
        {"delay_s": -1e-9},
        {"delay_s": math.nan},
        {"delay_s": math.inf},
        {"delay_s": True},
        {"delay_s": "5"},
        {"delay_s": 11 * 365 * 86_400},
        {"run_at": -1.0},
        {"run_at": math.nan},
        {"run_at": False},
        {"run_at": 2.0**53},
        {"delay_s": 1, "run_at": 1},
    ],
)
def test_a_bad_delay_or_run_at_is_refused_and_nothing_is_written(client, kwargs) -> None:
    queue = JobQueue(client, "bad")
    queue.submit("noop", delay_s=60)  # something to compare against
    before = _snapshot(client)
    with pytest.raises(InvalidInputError):
        queue.submit("noop", **kwargs)
    with pytest.raises(InvalidInputError):
        queue.submit_many([JobRequest("noop"), JobRequest("noop", **kwargs)])
    assert _snapshot(client) == before


@pytest.mark.parametrize("kwargs", [{"delay_s": 10**400}, {"run_at": 10**400}])
def test_a_huge_integer_delay_is_refused_as_bad_input(client, kwargs) -> None:
    queue = JobQueue(client, "huge")
    before = _snapshot(client)
    with pytest.raises(InvalidInputError):
        queue.submit("noop", **kwargs)
    assert _snapshot(client) == before


def test_a_huge_integer_rate_is_refused_as_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        RateLimit(per_s=10**400)


@pytest.mark.parametrize(
    "config",
    [
        QueueConfig(rate_limits={"no_such_task": RateLimit(per_s=1)}),
        QueueConfig(concurrency_limits={"no_such_task": 1}),
    ],
)
def test_limits_naming_an_unknown_task_are_refused(client, config) -> None:
    with pytest.raises(JobsimError):
        JobQueue(client, "typo", config)
    assert client.keys("*") == []


def test_run_at_in_the_past_queues_the_job_at_once(make_queue) -> None:
    queue = make_queue()
    job_id = queue.submit("noop", run_at=1.0)
    assert queue.status(job_id).status == "queued"
    assert queue.job_ids("queued") == [job_id] and queue.job_ids("scheduled") == []


# --- scheduled jobs ------------------------------------------------------------------------


def test_a_scheduled_job_is_listed_once_then_queued_at_its_priority(make_queue) -> None:
    """A due scheduled job of priority 9 overtakes priority-0 jobs queued long before it."""
    queue = make_queue()
    low = queue.submit_many([JobRequest("noop")] * 3)
    now = queue.leases.exchange("probe", 0).now_us / 1e6
    high = queue.submit("noop", priority=9, run_at=now + 0.15)
    later = queue.submit("noop", priority=9, delay_s=3600)
    assert queue.status(high).status == "scheduled"
    _assert_each_job_listed_once(queue, [*low, high, later])
    assert queue.leases.exchange("w", 1).jobs[0].id == low[0]  # not due yet
    wait_until(lambda: queue.leases.exchange("w", 0).now_us / 1e6 > now + 0.15)
    assert queue.status(high).status == "queued"
    leased = queue.leases.exchange("w", 2).jobs
    assert [j.id for j in leased] == [high, low[1]]
    assert queue.status(later).status == "scheduled"
    _assert_each_job_listed_once(queue, [*low, high, later])


def test_scheduled_and_parked_jobs_survive_retention_sweeps(make_queue) -> None:
    """Retention keeps one completed record: sweeps run on every ack and leave the
    scheduled job and the parked job (a queued job a limit holds back) alone."""
    queue = make_queue(
        QueueConfig(
            retention=Retention(max_completed=1, max_age_s=0.001),
            concurrency_limits={"sleep": 1},
        )
    )
    scheduled = queue.submit("noop", delay_s=3600)
    blocker, parked = queue.submit_many([JobRequest("sleep", {"seconds": 0})] * 2)
    (lease,) = queue.leases.exchange("w", 2).jobs  # leases blocker, parks the other
    assert lease.id == blocker and queue.stats().throttled == 1
    for _ in range(5):
        queue.submit("noop")
        (job,) = queue.leases.exchange("w", 1).jobs  # noop jobs only: sleep is capped
        queue.leases.complete([Ack(job.id, job.token)])
    wait_until(lambda: queue.stats().completed <= 1)
    queue.leases.exchange("w", 0)
    assert queue.status(scheduled).status == "scheduled"
    assert queue.status(parked).status == "queued"
    assert queue.stats().throttled == 1


# --- pause and resume ----------------------------------------------------------------------


def test_pause_keeps_leases_and_settles_them_but_leases_nothing(make_queue) -> None:
    queue = make_queue()
    ids = queue.submit_many([JobRequest("noop", max_retries=1)] * 4)
    a, b = queue.leases.exchange("w", 2).jobs
    assert queue.pause() is False and queue.pause() is True
    assert queue.leases.heartbeat("w", [(a.id, a.token), (b.id, b.token)], "") == []
    ex = queue.leases.exchange("w", 5, [Ack(a.id, a.token)], request_id="r1")
    assert ex.jobs == []
    queue.leases.fail([Nack(b.id, b.token, "boom", backoff_us=0)])
    queue.leases.exchange("w", 5)  # promotes the retry, leases nothing
    stats = queue.stats()
    assert (stats.completed, stats.processing, stats.queued, stats.paused) == (1, 0, 3, True)
    assert queue.resume() is True and queue.resume() is False
    leased = queue.leases.exchange("w", 5).jobs
    assert sorted(j.id for j in leased) == sorted([b.id, *ids[2:]])


def test_pause_scheduled_limits_and_retries_together_lose_no_job(make_queue) -> None:
    """Paused with a due scheduled job, a due retry and a capped task's parked job: nothing
    leases; resumed, the cap still holds and every job completes exactly once."""
    queue = make_queue(QueueConfig(concurrency_limits={"sleep": 1}))
    sleeps = queue.submit_many([JobRequest("sleep", {"seconds": 0}, max_retries=2)] * 3)
    now = queue.leases.exchange("probe", 0).now_us / 1e6
    scheduled = queue.submit("sleep", {"seconds": 0}, run_at=now + 0.05)
    (first,) = queue.leases.exchange("w", 5).jobs  # one slot: the others park
    assert queue.stats().throttled == 2
    queue.pause()
    queue.leases.fail([Nack(first.id, first.token, "boom", backoff_us=0)])
    assert queue.running("sleep") == 0
    wait_until(lambda: queue.leases.exchange("w", 0).now_us / 1e6 > now + 0.05)
    assert queue.leases.exchange("w", 5).jobs == []
    ids = [*sleeps, scheduled]
    stats = queue.stats()
    assert (stats.queued, stats.processing, stats.scheduled, stats.retrying) == (4, 0, 0, 0)
    queue.resume()
    done: list[str] = []
    while len(done) < 4:
        leased = queue.leases.exchange("w", 5).jobs
        assert len(leased) <= 1 and queue.running("sleep") == len(leased)
        queue.leases.complete([Ack(j.id, j.token) for j in leased])
        done += [j.id for j in leased]
    assert sorted(done) == sorted(ids)
    assert [j.status for j in queue.get_many(ids)] == ["completed"] * 4
    assert queue.stats().throttled == 0 and queue.running("sleep") == 0


def test_a_lease_expiring_while_paused_frees_its_slot_once(make_queue) -> None:
    queue = make_queue(QueueConfig(concurrency_limits={"noop": 1}, lease=Lease(duration_s=0.1)))
    ids = queue.submit_many([JobRequest("noop", max_retries=3)] * 2)
    (job,) = queue.leases.exchange("w", 2).jobs
    queue.pause()
    wait_until(lambda: queue.leases.exchange("w", 0) and queue.stats().processing == 0)
    assert queue.running("noop") == 0 and queue.stats().totals["expired"] == 1
    queue.leases.complete([Ack(job.id, job.token)])  # the late ack is fenced, frees nothing
    assert queue.running("noop") == 0
    queue.resume()
    (again,) = queue.leases.exchange("w", 2).jobs
    assert again.id in ids and queue.running("noop") == 1
    assert queue.leases.exchange("w2", 2).jobs == []


# --- limits and priorities -----------------------------------------------------------------


def test_a_parked_high_priority_job_goes_first_when_its_slot_frees(make_queue) -> None:
    queue = make_queue(QueueConfig(concurrency_limits={"sleep": 1}))
    blocker = queue.submit("sleep", {"seconds": 0})
    (held,) = queue.leases.exchange("w", 1).jobs
    urgent = queue.submit("sleep", {"seconds": 0}, priority=9)
    other = queue.submit_many([JobRequest("noop", priority=5)] * 2)
    assert [j.id for j in queue.leases.exchange("w", 1).jobs] == [other[0]]  # urgent parks
    assert queue.stats().throttled == 1
    queue.leases.complete([Ack(blocker, held.token)])
    assert _first_leased(queue) == [urgent]


def test_every_job_is_listed_exactly_once_with_parked_jobs(make_queue) -> None:
    queue = make_queue(QueueConfig(rate_limits={"noop": SLOW}))
    ids = queue.submit_many([JobRequest("noop")] * 3)
    queue.leases.exchange("w", 3)  # one leases, two park
    _assert_each_job_listed_once(queue, ids)


def test_the_queued_listing_merges_parked_jobs_in_service_order(make_queue) -> None:
    """Parked jobs list among the ready ones by priority (service order), and pages of the
    merged listing join up to the whole."""
    queue = make_queue(QueueConfig(rate_limits={"noop": SLOW}))
    queue.submit("noop", job_id="taken", priority=9)
    queue.leases.exchange("w", 1)  # takes the only token
    queue.submit("noop", job_id="parked9", priority=9)
    queue.submit("noop", job_id="parked5", priority=5)
    assert queue.leases.exchange("w", 1).jobs == []  # both park
    queue.submit("sleep", {"seconds": 0}, job_id="ready7", priority=7)
    queue.submit("sleep", {"seconds": 0}, job_id="ready0", priority=0)
    order = ["parked9", "ready7", "parked5", "ready0"]
    assert queue.job_ids("queued") == order
    assert queue.job_ids("queued", limit=2) == order[:2]
    assert queue.job_ids("queued", offset=2) == order[2:]
    assert queue.job_ids("queued", offset=1, limit=2) == order[1:3]
    assert queue.stats().queued == 4 and queue.stats().throttled == 2


# --- lost replies: each re-sent script changes nothing more ----------------------------------


@pytest.fixture
def lossy(backend: str, request: pytest.FixtureRequest) -> Iterator[tuple[ReplyDroppingProxy, str]]:
    with ReplyDroppingProxy.for_url(backend_url(backend, request)) as proxy:
        yield proxy, f"review-{uuid.uuid4().hex[:6]}"


def test_a_scheduled_submit_whose_reply_is_lost_is_written_once(lossy) -> None:
    proxy, name = lossy
    queue = JobQueue(connect(proxy.url), name)
    queue.submit("noop", job_id="warm", delay_s=60)  # loads the script
    proxy.drop_next_replies(1, commands=("EVALSHA",))
    queue.submit("noop", {"n": 1}, job_id="later", delay_s=60)
    assert proxy.dropped == 1
    assert queue.job_ids("scheduled") == ["warm", "later"]
    assert queue.stats().totals["submitted"] == 2


def test_a_limited_dequeue_whose_reply_is_lost_takes_its_tokens_and_slots_once(lossy) -> None:
    proxy, name = lossy
    config = QueueConfig(
        rate_limits={"noop": RateLimit(per_s=0.001, burst=3)}, concurrency_limits={"noop": 5}
    )
    queue = JobQueue(connect(proxy.url), name, config)
    ids = queue.submit_many([JobRequest("noop")] * 5)
    queue.leases.exchange("w", 0)  # loads the script
    proxy.drop_next_replies(1, commands=("EVALSHA",))
    first = queue.leases.exchange("w", 3, request_id="once")
    assert proxy.dropped == 1
    assert [j.id for j in first.jobs] == ids[:3]
    assert queue.running("noop") == 3
    assert queue.leases.exchange("w2", 3).jobs == []  # the bucket was charged 3, not 6
    assert queue.stats().throttled == 2


def test_set_limits_whose_reply_is_lost_leaves_the_same_table(lossy) -> None:
    proxy, name = lossy
    client = connect(proxy.url)
    JobQueue(client, name, QueueConfig(concurrency_limits={"noop": 2}))  # loads the script
    proxy.drop_next_replies(1, commands=("EVALSHA",))
    config = QueueConfig(rate_limits={"sleep": RateLimit(per_s=2, burst=3)})
    queue = JobQueue(client, name, config)
    assert proxy.dropped == 1
    assert queue.limits() == {"sleep": jobsim.limits.TaskLimits(rate=RateLimit(per_s=2, burst=3))}


def test_pause_whose_reply_is_lost_still_says_it_paused(lossy) -> None:
    proxy, name = lossy
    queue = JobQueue(connect(proxy.url), name)
    queue.resume()  # loads the script
    proxy.drop_next_replies(1, commands=("EVALSHA",))
    assert queue.pause() is False
    assert queue.stats().totals["paused"] == 1


# --- more hostile cases --------------------------------------------------------------------


def test_a_batch_with_a_conflicting_id_writes_no_scheduled_job(client) -> None:
    queue = JobQueue(client, "clash")
    queue.submit("noop", {"n": 1}, job_id="taken", delay_s=60)
    before = _snapshot(client)
    batch = [JobRequest("noop", delay_s=5), JobRequest("noop", {"n": 2}, job_id="taken")]
    with pytest.raises(InvalidInputError):
        queue.submit_many(batch)
    assert _snapshot(client) == before


def test_a_stale_ack_after_expiry_never_frees_the_new_holders_slot(make_queue) -> None:
    queue = make_queue(QueueConfig(concurrency_limits={"noop": 1}, lease=Lease(duration_s=0.1)))
    queue.submit_many([JobRequest("noop", max_retries=3)] * 2)
    (old,) = queue.leases.exchange("w1", 2).jobs
    wait_until(lambda: queue.leases.exchange("w2", 0) and queue.stats().processing == 0)
    (new,) = queue.leases.exchange("w2", 2).jobs
    assert queue.running("noop") == 1
    assert queue.leases.complete([Ack(old.id, old.token)]) == [old.id]  # fenced
    queue.leases.fail([Nack(old.id, old.token, "late", backoff_us=0)])
    assert queue.running("noop") == 1
    assert queue.leases.exchange("w3", 2).jobs == []  # the cap still holds
    queue.leases.complete([Ack(new.id, new.token)])
    assert queue.running("noop") == 0


def test_removing_a_limit_frees_its_parked_jobs_at_the_next_dequeue(client) -> None:
    name = f"lift{uuid.uuid4().hex[:6]}"
    queue = JobQueue(client, name, QueueConfig(concurrency_limits={"noop": 1}))
    ids = queue.submit_many([JobRequest("noop")] * 4)
    assert len(queue.leases.exchange("w", 4).jobs) == 1
    assert queue.stats().throttled == 3
    lifted = JobQueue(client, name, QueueConfig(concurrency_limits={}))
    assert lifted.limits() == {}
    assert [j.id for j in lifted.leases.exchange("w", 4).jobs] == ids[1:]
    assert lifted.stats().throttled == 0 and lifted.stats().processing == 4


def _first_leased(queue: JobQueue) -> list[str]:
    """The ids of the first exchange that leases anything, as a worker would call again at once
    while more is due than one call promotes (DEQUEUE then leases nothing and says due now)."""
    for _ in range(10):
        reply = queue.leases.exchange("w", 1)
        if reply.jobs:
            return [j.id for j in reply.jobs]
    return []


def test_a_pool_started_while_paused_runs_nothing_until_resumed_and_loses_nothing(
    make_queue,
) -> None:
    queue = make_queue(QueueConfig(concurrency_limits={"sleep": 2}))
    queue.pause()
    ids = queue.submit_many([JobRequest("sleep", {"seconds": 0.001})] * 20)
    ids += [queue.submit("noop", delay_s=0.05)]
    with jobsim.WorkerPool(queue, concurrency=3):
        wait_until(lambda: queue.stats().scheduled == 0)  # promoted while paused
        assert queue.stats().processing == 0 and queue.stats().completed == 0
        queue.resume()
        queue.wait_until_drained(timeout_s=10)
    assert [j.status for j in queue.get_many(ids)] == ["completed"] * 21
    assert all(j.attempts == 1 for j in queue.get_many(ids))
    assert queue.running("sleep") == 0 and queue.client.hlen(queue.keys.slots) == 0


def test_a_due_high_priority_scheduled_job_is_not_passed_over(make_queue) -> None:
    queue = make_queue()
    now = queue.leases.exchange("probe", 0).now_us / 1e6
    queue.submit_many([JobRequest("noop", run_at=now + 0.3)] * 100)
    due = max(now + 0.3, server_time_s(queue.client)) + 0.05  # after the hundred
    urgent = queue.submit("noop", priority=9, run_at=due)
    assert queue.stats().scheduled == 101
    wait_until(lambda: server_time_s(queue.client) > due)  # no DEQUEUE meanwhile
    assert _first_leased(queue) == [urgent]


def test_requeue_dead_of_a_scheduled_or_parked_job_is_refused_and_writes_nothing(
    make_queue,
) -> None:
    queue = make_queue(QueueConfig(rate_limits={"noop": SLOW}))
    scheduled = queue.submit("noop", delay_s=3600)
    ids = queue.submit_many([JobRequest("noop")] * 2)
    queue.leases.exchange("w", 2)  # one leases, one parks
    before = _snapshot(queue.client)
    for job_id in (scheduled, ids[1]):
        with pytest.raises(jobsim.errors.InvalidStateError):
            queue.requeue_dead(job_id)
    assert _snapshot(queue.client) == before


def test_delete_leaves_no_key_of_scheduled_parked_or_limited_state(client) -> None:
    queue = JobQueue(client, "gone", QueueConfig(concurrency_limits={"sleep": 1}))
    queue.submit("noop", delay_s=3600)
    queue.submit_many([JobRequest("sleep", {"seconds": 0})] * 3)
    queue.leases.exchange("w", 3)
    queue.pause()
    assert client.keys("*parked*")
    queue.delete()
    assert client.keys("*") == []


def test_parked_high_priority_jobs_are_not_passed_over_when_a_limit_is_raised(client) -> None:
    name = f"raise{uuid.uuid4().hex[:6]}"
    queue = JobQueue(client, name, QueueConfig(concurrency_limits={"noop": 1}))
    queue.submit("noop")
    assert len(queue.leases.exchange("w", 1).jobs) == 1  # holds the only slot
    urgent = queue.submit_many([JobRequest("noop", priority=9)] * 150)
    low = queue.submit("sleep", {"seconds": 0})
    assert [j.id for j in queue.leases.exchange("w", 1).jobs] == [low]  # 150 park
    low = queue.submit("sleep", {"seconds": 0})
    assert queue.stats().throttled == 150
    raised = JobQueue(client, name, QueueConfig(concurrency_limits={"noop": 1000}))
    # a DEQUEUE moves at most 100 parked jobs back: while more may lease, it leases nothing
    # and says "call again now", as a worker does, until every urgent one is back in the queue
    calls = []
    while not (leased := raised.leases.exchange("w", 101)).jobs and len(calls) < 10:
        calls.append(leased.next_due_s)
    assert calls and all(due == 0 for due in calls), calls
    ids = [j.id for j in leased.jobs]
    assert len(ids) == 101 and set(ids) <= set(urgent) and low not in ids


# --- cancel and wait (landed mid-review) ---------------------------------------------------


def test_cancelling_a_parked_job_takes_it_out_of_its_tasks_parked_set_once(make_queue) -> None:
    """Cap 1: cancel a parked job; the slot is neither freed nor taken, throttled counts one
    fewer, and when the slot frees the remaining parked job (not the cancelled) leases."""
    queue = make_queue(QueueConfig(concurrency_limits={"sleep": 1}))
    ids = queue.submit_many([JobRequest("sleep", {"seconds": 0})] * 3)
    (held,) = queue.leases.exchange("w", 3).jobs
    assert queue.stats().throttled == 2
    before = queue.stats().totals.get("cancelled", 0)
    assert queue.cancel(ids[1]) is True and queue.cancel(ids[1]) is True
    stats = queue.stats()
    assert (stats.throttled, stats.queued, stats.cancelled) == (1, 1, 1)
    assert stats.totals["cancelled"] == before + 1
    assert queue.running("sleep") == 1
    assert not queue.client.zscore(queue.keys.parked("sleep"), ids[1])
    queue.leases.complete([Ack(held.id, held.token)])
    assert [j.id for j in queue.leases.exchange("w", 3).jobs] == [ids[2]]
    assert queue.status(ids[1]).status == "cancelled" and queue.stats().throttled == 0


def test_a_cancelled_running_capped_job_frees_its_slot_exactly_once(make_queue) -> None:
    queue = make_queue(QueueConfig(concurrency_limits={"noop": 1}, lease=Lease(duration_s=0.1)))
    ids = queue.submit_many([JobRequest("noop", max_retries=3)] * 3)
    (a,) = queue.leases.exchange("w", 3).jobs
    assert queue.cancel(a.id) is True
    assert queue.status(a.id).status == "processing" and queue.running("noop") == 1
    wait_until(lambda: queue.leases.exchange("w2", 0) and queue.running("noop") == 0)
    assert queue.status(a.id).status == "cancelled"
    assert queue.leases.complete([Ack(a.id, a.token)]) == [a.id]  # late: fenced
    (b,) = queue.leases.exchange("w", 3).jobs
    assert b.id == ids[1] and queue.running("noop") == 1
    queue.leases.fail([Nack(a.id, a.token, "late", backoff_us=0)])
    assert queue.running("noop") == 1  # the stale fail freed nothing
    assert queue.leases.exchange("w3", 3).jobs == []


@pytest.mark.parametrize("where", ["scheduled", "parked", "retrying", "processing"])
def test_each_job_is_listed_once_around_a_cancel(make_queue, where: str) -> None:
    queue = make_queue(QueueConfig(concurrency_limits={"sleep": 1}))
    blocker = queue.submit("sleep", {"seconds": 0}, max_retries=2)
    (held,) = queue.leases.exchange("w", 1).jobs
    if where == "scheduled":
        target = queue.submit("noop", delay_s=3600)
    elif where == "parked":
        target = queue.submit("sleep", {"seconds": 0})
        assert queue.leases.exchange("w", 1).jobs == [] and queue.stats().throttled == 1
    elif where == "retrying":
        target = blocker
        queue.leases.fail([Nack(held.id, held.token, "boom", backoff_us=60_000_000)])
    else:
        target = blocker
    others = queue.submit_many([JobRequest("noop")] * 2)
    queue.cancel(target)
    if where == "processing":
        queue.leases.complete([Ack(held.id, held.token)])
    assert queue.status(target).status == "cancelled"
    _assert_each_job_listed_once(queue, [target, *others])
    assert queue.stats().throttled == 0


@pytest.mark.parametrize("job_id", ["no-such-job", "", "bad id", "x" * 200])
def test_cancel_of_an_unknown_job_is_refused_and_writes_nothing(client, job_id: str) -> None:
    queue = JobQueue(client, "unknown")
    queue.submit("noop", delay_s=60)
    before = _snapshot(client)
    with pytest.raises(jobsim.errors.JobNotFoundError):
        queue.cancel(job_id)
    for bad in (7, None, True, ["x"]):
        with pytest.raises(InvalidInputError):
            queue.cancel(bad)  # type: ignore[arg-type]
    assert _snapshot(client) == before


@pytest.mark.parametrize("end", ["completed", "failed"])
def test_cancel_of_a_finished_job_is_refused_and_writes_nothing(client, end: str) -> None:
    queue = JobQueue(client, "finished")
    job_id = queue.submit("noop", max_retries=0)
    (job,) = queue.leases.exchange("w", 1).jobs
    if end == "completed":
        queue.leases.complete([Ack(job.id, job.token)])
    else:
        queue.leases.fail([Nack(job.id, job.token, "boom", backoff_us=0)])
    before = _snapshot(client)
    with pytest.raises(jobsim.errors.JobFinishedError):
        queue.cancel(job_id)
    assert _snapshot(client) == before


def test_a_cancel_whose_reply_is_lost_is_counted_once(lossy) -> None:
    proxy, name = lossy
    queue = JobQueue(connect(proxy.url), name, QueueConfig(rate_limits={"noop": SLOW}))
    ids = queue.submit_many([JobRequest("noop")] * 3)
    (running,) = queue.leases.exchange("w", 3).jobs  # one leases, two park
    queue.cancel(ids[2])  # loads the script
    proxy.drop_next_replies(2, commands=("EVALSHA",))
    assert queue.cancel(ids[1]) is True  # parked
    assert queue.cancel(running.id) is True  # processing: requested
    assert proxy.dropped == 2
    totals = queue.stats().totals
    assert (totals["cancelled"], totals["cancel_requested"]) == (2, 1)
    assert queue.stats().throttled == 0 and queue.stats().cancelled == 2


def test_wait_on_a_cancelled_parked_job_returns_it(make_queue) -> None:
    queue = make_queue(QueueConfig(rate_limits={"noop": SLOW}))
    ids = queue.submit_many([JobRequest("noop")] * 2)
    queue.leases.exchange("w", 2)
    queue.cancel(ids[1])
    assert queue.wait(ids[1], timeout_s=0).status == "cancelled"
    with pytest.raises(jobsim.errors.WaitTimeoutError):
        queue.wait(ids[0], timeout_s=0.01)


@pytest.mark.parametrize("timeout_s", [-1, math.nan, math.inf, True, "1", 3601])
def test_wait_with_a_bad_timeout_is_refused_and_writes_nothing(client, timeout_s) -> None:
    queue = JobQueue(client, "waitbad")
    job_id = queue.submit("noop")
    before = _snapshot(client)
    with pytest.raises(InvalidInputError):
        queue.wait(job_id, timeout_s=timeout_s)
    assert _snapshot(client) == before


def test_retention_bounds_cancelled_records_too(make_queue) -> None:
    queue = make_queue(QueueConfig(retention=Retention(max_completed=2, max_age_s=None)))
    ids = queue.submit_many([JobRequest("noop", delay_s=3600)] * 5)
    for job_id in ids:
        queue.cancel(job_id)
    for _ in range(3):
        queue.submit("noop")
        (job,) = queue.leases.exchange("w", 1).jobs
        queue.leases.complete([Ack(job.id, job.token)])
    assert queue.stats().cancelled <= 2


def test_a_pool_with_limits_pause_scheduled_jobs_and_cancels_loses_nothing(make_queue) -> None:
    """Every third job cancelled (queued, parked, scheduled or mid-run) while a capped,
    rate-limited pool runs and the queue is paused and resumed: each job ends completed or
    cancelled as its cancel call said, totals add up, and no slot or parked job is left."""
    config = QueueConfig(
        lease=Lease(duration_s=2.0, heartbeat_s=0.05),
        concurrency_limits={"cancel_coop": 2},
        rate_limits={"noop": RateLimit(per_s=400, burst=5)},
    )
    queue = make_queue(config)
    requests = [
        JobRequest("cancel_coop", {"seconds": 0.02}, priority=i % 3, delay_s=0.02 * (i % 4 == 0))
        if i % 2
        else JobRequest("noop", i, priority=i % 5)
        for i in range(90)
    ]
    ids = queue.submit_many(requests)
    said: dict[str, str] = {}
    with jobsim.WorkerPool(queue, concurrency=3, prefetch_s=0):
        for n, job_id in enumerate(ids):
            if n % 30 == 10:
                queue.pause()
            if n % 30 == 20:
                queue.resume()
            if n % 3 == 0:
                try:
                    queue.cancel(job_id)
                    said[job_id] = "cancelled"
                except jobsim.errors.JobFinishedError:
                    said[job_id] = "completed"
        queue.resume()
        queue.wait_until_drained(timeout_s=20)
    jobs = queue.get_many(ids)
    assert len(jobs) == 90
    assert {j.id: j.status.value for j in jobs if j.id in said} == said
    assert {j.status.value for j in jobs if j.id not in said} == {"completed"}
    totals = queue.stats().totals
    assert totals["completed"] + totals.get("cancelled", 0) == 90
    assert totals.get("fenced", 0) == 0
    _assert_each_job_listed_once(queue, ids)
    assert queue.running("cancel_coop") == 0 and queue.client.hlen(queue.keys.slots) == 0
    assert queue.stats().throttled == 0 and not queue.client.keys("*parked*")


@pytest.mark.parametrize("how", ["release", "release_worker", "unlease"])
def test_a_cancel_marked_capped_lease_given_back_frees_its_slot_once(make_queue, how) -> None:
    queue = make_queue(QueueConfig(concurrency_limits={"noop": 1}))
    ids = queue.submit_many([JobRequest("noop", max_retries=3)] * 2)
    (a,) = queue.leases.exchange("w", 2).jobs
    queue.cancel(a.id)
    for _ in range(2):  # the second call is a re-send: it frees nothing more
        if how == "release":
            queue.leases.release([jobsim.scripts.GiveBack(a.id, a.token, "crashed", "gone")])
        elif how == "release_worker":
            queue.leases.release_worker("w", "crashed", "gone")
        else:
            queue.leases.unlease([a])
        assert queue.running("noop") == 0
    assert queue.status(a.id).status == "cancelled"
    (b,) = queue.leases.exchange("w2", 2).jobs
    assert b.id == ids[1] and queue.running("noop") == 1
    assert queue.stats().totals["cancelled"] == 1


def _check_books(queue: JobQueue, ids: list[str], caps: dict[str, int]) -> None:
    """The invariants a random run must keep after every step."""
    client, keys = queue.client, queue.keys
    parked = {t: set(client.zrange(keys.parked(t), 0, -1)) for t in ("noop", "sleep")}
    listings = {s: set(m) for s, m in _listings(queue).items()}
    listings["queued"] |= parked["noop"] | parked["sleep"]
    jobs = {j.id: j for j in queue.get_many(ids)}
    assert set(jobs) == set(ids)  # no record lost
    for job_id, job in jobs.items():
        assert [s for s, m in listings.items() if job_id in m] == [job.status.value], job_id
    assert not parked["noop"] & parked["sleep"]
    assert int(client.hget(keys.limiter, "parked") or 0) == sum(map(len, parked.values()))
    slots = client.hgetall(keys.slots)
    for job_id, task in slots.items():
        assert jobs[job_id].status == "processing" and jobs[job_id].task == task
    for task, cap in caps.items():
        holding = sum(t == task for t in slots.values())
        assert queue.running(task) == holding <= cap, task


def _random_step(queue: JobQueue, rng, ids: list[str], held: list) -> None:
    op = rng.choice("ssslllacfurxpq")
    if op == "s":
        task = rng.choice(["noop", "sleep"])
        payload = {"seconds": 0} if task == "sleep" else None
        delay = rng.choice([None, None, 0.0, 0.01, 3600.0])
        prio = rng.randint(0, 3)
        ids.append(queue.submit(task, payload, priority=prio, delay_s=delay, max_retries=2))
    elif op == "l":
        held += queue.leases.exchange(rng.choice("wv"), rng.randint(1, 3)).jobs
    elif held and op in "acfur":
        job = held.pop(rng.randrange(len(held)))
        if op == "a":
            queue.leases.complete([Ack(job.id, job.token)])
        elif op == "f":
            backoff = rng.choice([0, 5000])
            queue.leases.fail([Nack(job.id, job.token, "boom", backoff_us=backoff)])
        elif op == "u":
            queue.leases.unlease([job])
        elif op == "r":
            queue.leases.release([jobsim.scripts.GiveBack(job.id, job.token, "crashed", "x")])
        else:
            queue.cancel(job.id)  # running: requested; the lease still ends later
            held.append(job)
    elif op == "x" and ids:
        with contextlib.suppress(jobsim.errors.JobFinishedError):
            queue.cancel(rng.choice(ids))
    elif op == "p":
        queue.pause()
    elif op == "q":
        queue.resume()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_random_run_of_every_transition_keeps_the_books(make_queue, seed: int) -> None:
    """Random submits (now, delayed, prioritised), leases, acks, fails, unleases, releases,
    cancels, pauses and resumes, with a capped and a rate-limited task: after every step
    each job is in exactly one place, the parked count and the slots match the sets."""
    rng = random.Random(seed)
    caps = {"sleep": 2}
    queue = make_queue(
        QueueConfig(concurrency_limits=caps, rate_limits={"noop": RateLimit(per_s=50, burst=2)})
    )
    ids: list[str] = []
    held: list[jobsim.scripts.Dequeued] = []
    for step in range(240):
        _random_step(queue, rng, ids, held)
        if step % 6 == 5:
            _check_books(queue, ids, caps)
    totals = queue.stats().totals
    ends = ("completed", "cancelled", "retried", "failed", "interrupted", "crashed")
    assert len(ids) > 30 and sum(totals.get(k, 0) for k in ends) > 10  # the run did something


def test_a_due_high_priority_retry_is_not_passed_over(make_queue) -> None:
    queue = make_queue()
    low = queue.submit_many([JobRequest("noop", max_retries=1)] * 100)
    urgent = queue.submit("noop", priority=9, max_retries=1)
    leased = queue.leases.exchange("w", 101).jobs
    assert len(leased) == 101
    queue.leases.fail(
        [
            Nack(j.id, j.token, "boom", backoff_us=150_000 if j.id == urgent else 100_000)
            for j in leased
        ]
    )
    now = server_time_s(queue.client)
    assert queue.stats().retrying == 101 and len(low) == 100
    wait_until(lambda: server_time_s(queue.client) > now + 0.2)  # no DEQUEUE meanwhile
    assert _first_leased(queue) == [urgent]
