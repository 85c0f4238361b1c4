"""Periodic jobs (:mod:`jobsim.periodic`, :mod:`jobsim.scheduler`): ticks every N seconds or on
a cron schedule, each submitted exactly once however many schedulers race, missed ticks
skipped or caught up as declared; on fakeredis and on a real redis-server."""

from __future__ import annotations

import threading

import pytest

from jobsim import JobQueue, Periodic, QueueConfig, WorkerPool
from jobsim.errors import InvalidInputError, UnknownTaskError
from jobsim.periodic import MAX_CATCH_UP
from jobsim.scheduler import POLL_S, PeriodicScheduler
from tests.support.waiting import wait_until

T0 = 1_800_000_000  # a tick of every schedule below: 2027-01-15 08:00 UTC


def _periodic_ids(queue: JobQueue) -> list[str]:
    keys = queue.client.keys(queue.keys.job("periodic:*"))
    return sorted(k.removeprefix(queue.keys.job_prefix) for k in keys)


def test_three_schedulers_racing_submit_each_tick_exactly_once(make_queue) -> None:
    """Three schedulers of one queue call in lockstep for 40 ticks: each tick's job exists
    once, the counters count 40 submissions, and the calls that lost the race wrote nothing."""
    every = Periodic("beat", "noop", {"n": 1}, every_s=5, missed="catch_up")
    queue = make_queue(QueueConfig(periodic=[every]))
    schedulers = [PeriodicScheduler(JobQueue(queue.client, queue.name, queue.config))
                  for _ in range(3)]  # fmt: skip
    barrier = threading.Barrier(3, timeout=10)  # a failing thread breaks it, not hangs it
    inserted = [0, 0, 0]
    moments = [T0 - 1] + [T0 + 5 * i for i in range(40)]

    def race(index: int) -> None:
        for now in moments:
            barrier.wait()
            inserted[index] += schedulers[index].tick(now_s=now)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = [f"periodic:beat:{T0 + 5 * i}" for i in range(40)]
    assert _periodic_ids(queue) == sorted(expected)
    assert sum(inserted) == 40
    totals = queue.stats().totals
    assert totals["submitted"] == totals["periodic_submitted"] == 40
    assert queue.status(expected[0]).payload == {"n": 1}


def test_three_worker_pools_run_each_tick_once(make_queue) -> None:
    """Real pools, each with its own scheduler thread, over about three one-second ticks:
    tick ids are consecutive (catch-up: none missed), each job ran once."""
    every = Periodic("pulse", "noop", every_s=1, missed="catch_up")
    config = QueueConfig(periodic=[every])
    queue = make_queue(config)
    pools = [WorkerPool(JobQueue(queue.client, queue.name, config), concurrency=1)
             for _ in range(3)]  # fmt: skip
    for pool in pools:
        pool.start()
    try:
        wait_until(lambda: len(_periodic_ids(queue)) >= 3, timeout_s=20)
    finally:
        for pool in pools:
            pool.stop()
    queue.wait_until_drained(timeout_s=10)
    ticks = sorted(int(i.rsplit(":", 1)[1]) for i in _periodic_ids(queue))
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))
    jobs = queue.get_many(_periodic_ids(queue))
    assert all(j.status == "completed" and j.attempts == 1 for j in jobs)
    assert queue.stats().totals["periodic_submitted"] == len(ticks)
    assert POLL_S < 1


@pytest.mark.parametrize(("missed", "expected"), [("skip", 1), ("catch_up", 5)])
def test_missed_cron_ticks_are_skipped_or_caught_up(make_queue, missed, expected) -> None:
    """A cron schedule every minute, nobody running for five minutes: `skip` submits the
    latest tick only and counts four skipped; `catch_up` submits all five, oldest first."""
    schedule = Periodic("minutely", "noop", cron="* * * * *", missed=missed)
    queue = make_queue(QueueConfig(periodic=[schedule]))
    scheduler = PeriodicScheduler(queue)
    assert scheduler.tick(now_s=T0 + 0.5) == 0  # first seen: starts at its next tick
    assert scheduler.tick(now_s=T0 + 5 * 60 + 0.5) == expected
    ticks = [int(i.rsplit(":", 1)[1]) for i in _periodic_ids(queue)]
    assert sorted(ticks) == [T0 + 60 * k for k in range(6 - expected, 6)]
    assert queue.stats().totals.get("periodic_skipped", 0) == 5 - expected
    assert scheduler.tick(now_s=T0 + 5 * 60 + 30) == 0  # nothing new due


def test_catch_up_is_bounded(make_queue) -> None:
    """A long outage catches up on at most MAX_CATCH_UP ticks, the newest; the rest are
    counted as skipped."""
    schedule = Periodic("fast", "noop", every_s=1, missed="catch_up")
    queue = make_queue(QueueConfig(periodic=[schedule]))
    scheduler = PeriodicScheduler(queue)
    scheduler.tick(now_s=T0)
    assert scheduler.tick(now_s=T0 + 1000) == MAX_CATCH_UP
    assert queue.stats().totals["periodic_skipped"] == 1000 - MAX_CATCH_UP
    assert _periodic_ids(queue)[-1] == f"periodic:fast:{T0 + 1000}"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cron": "not a cron"}, "cron"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"every_s": 0}, "every_s"),
        ({"every_s": 1.5}, "every_s"),
        ({}, "every_s"),
        ({"every_s": 5, "cron": "* * * * *"}, "every_s"),
        ({"every_s": 5, "missed": "later"}, "missed"),
    ],
)
def test_a_bad_schedule_is_an_input_error_naming_the_field(kwargs, field) -> None:
    """Cron parse errors, bad intervals and unknown `missed` are InvalidInputError."""
    with pytest.raises(InvalidInputError) as caught:
        Periodic("bad", "noop", **kwargs)
    assert caught.value.field == field


def test_duplicate_schedule_names_are_refused() -> None:
    """Two schedules of one queue may not share a name (their ticks' ids would collide)."""
    a = Periodic("same", "noop", every_s=1)
    with pytest.raises(InvalidInputError, match="unique"):
        QueueConfig(periodic=[a, Periodic("same", "noop", every_s=2)])


def test_a_schedule_of_an_unknown_task_writes_nothing_for_its_tick(make_queue) -> None:
    """The tick's job is validated first: an unknown task raises and the tick stays due."""
    schedule = Periodic("ghost", "no_such_task", every_s=1)
    queue = make_queue(QueueConfig(periodic=[schedule]))
    scheduler = PeriodicScheduler(queue)
    scheduler.tick(now_s=T0)
    with pytest.raises(UnknownTaskError):
        scheduler.tick(now_s=T0 + 1)
    assert _periodic_ids(queue) == [] and queue.client.hget(queue.keys.periodic, "ghost") == str(T0)
