"""One pool serving several queues: the weighted partition of its workers, priorities
within each queue, and conservation on every queue (fake and real server)."""

from __future__ import annotations

import random
import threading
from collections import defaultdict

import pytest

import jobsim
from jobsim import WorkerPool
from jobsim.cli import parse
from jobsim.errors import InvalidInputError
from jobsim.pool import shares
from jobsim.requests import JobRequest
from tests.support.waiting import wait_until

ORDER: dict[str, list[int]] = defaultdict(list)
_LOCK = threading.Lock()


@jobsim.task("record_queue_order")
def _record(payload: dict[str, object]) -> None:
    with _LOCK:
        ORDER[str(payload["queue"])].append(int(payload["n"]))  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("concurrency", "weights", "expected"),
    [
        (8, [3, 1], [6, 2]),
        (4, [1, 1], [2, 2]),
        (3, [1, 1, 1], [1, 1, 1]),
        (10, [1, 2, 2], [2, 4, 4]),
        (5, [1, 1, 1, 1], [2, 1, 1, 1]),  # the spare worker goes to the earlier queue on a tie
        (3, [100, 1, 1], [1, 1, 1]),  # never fewer than one: no queue starves
    ],
)
def test_workers_are_dealt_one_per_queue_then_by_weight(
    concurrency: int, weights: list[float], expected: list[int]
) -> None:
    """Each queue gets one worker, the rest by largest remainder of the weighted share."""
    assert shares(concurrency, weights) == expected
    assert sum(expected) == concurrency


@pytest.mark.parametrize(
    ("concurrency", "weights", "field"),
    [(1, [1, 1], "concurrency"), (4, [1, 0], "weights"), (4, [1, -2], "weights")],
)
def test_bad_shares_are_refused(concurrency: int, weights: list[float], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        shares(concurrency, weights)
    assert info.value.field == field


def test_a_pool_refuses_a_queue_twice_or_a_weight_count_that_does_not_match(make_queue) -> None:
    q = make_queue()
    with pytest.raises(InvalidInputError, match="distinct"):
        WorkerPool([q, q])
    with pytest.raises(InvalidInputError, match="one weight per queue"):
        WorkerPool([q, make_queue()], weights=[1, 2, 3])


def test_one_pool_drains_every_queue_with_priorities_honoured_in_each(make_queue) -> None:
    """Two queues, one worker each (weights 1:1 of 2): each queue's jobs run highest
    priority first and FIFO within a priority; every job of both completes exactly once."""
    rng = random.Random(5)
    queues = [make_queue(), make_queue()]
    priorities = {q.name: [rng.randint(0, 9) for _ in range(40)] for q in queues}
    for q in queues:
        q.submit_many(
            JobRequest("record_queue_order", {"queue": q.name, "n": i}, priority=p)
            for i, p in enumerate(priorities[q.name])
        )
        ORDER[q.name].clear()
    with WorkerPool(queues, concurrency=2) as pool:
        assert pool.shares == {queues[0].name: 1, queues[1].name: 1}
        for q in queues:  # each worker registers with its own queue
            wait_until(lambda q=q: len(q.workers()) == 1)
        stats = [q.wait_until_drained(timeout_s=30) for q in queues]
    for q, s in zip(queues, stats, strict=True):
        p = priorities[q.name]
        assert ORDER[q.name] == sorted(range(40), key=lambda i: (-p[i], i))
        assert (s.completed, s.totals["completed"], s.failed) == (40, 40, 0)


def test_weights_give_each_queue_its_share_of_the_workers(make_queue) -> None:
    """8 workers over weights 3:1 are 6 and 2 registered workers, and both queues drain."""
    queues = [make_queue(), make_queue()]
    for q in queues:
        q.submit_many(JobRequest("noop", {}) for _ in range(50))
    with WorkerPool(queues, concurrency=8, weights=[3, 1]) as pool:
        assert list(pool.shares.values()) == [6, 2]
        wait_until(lambda: [len(q.workers()) for q in queues] == [6, 2])
        assert all(q.wait_until_drained(timeout_s=30).completed == 50 for q in queues)
    assert len(pool.worker_ids) == 8 and len(set(pool.worker_ids)) == 8


def test_the_worker_command_takes_several_queues_and_their_weights() -> None:
    """``jobsim worker --queue a --queue b --weight 3 --weight 1`` parses to both lists."""
    args = parse(["worker", "--queue", "a", "--queue", "b", "--weight", "3", "--weight", "1"])
    assert (args.queues, args.weights) == (["a", "b"], [3.0, 1.0])
