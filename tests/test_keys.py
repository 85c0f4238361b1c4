"""jobsim.keys: every key of a queue, named in one place and kept in one cluster slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from jobsim import WorkerPool
from jobsim.errors import InvalidInputError
from jobsim.keys import Keys


def test_every_key_carries_the_queue_hash_tag() -> None:
    """Fixed, per-job, per-pool and reply keys all start with jobsim:{name}:."""
    k = Keys("orders")
    names = [
        *k.all_fixed(),
        k.job("abc"),
        k.stop("pool-1"),
        k.reply("w1"),
        k.notify("abc"),
        k.parked("t"),
    ]
    assert all(n.startswith("jobsim:{orders}:") for n in names)
    assert len({key_slot(n.encode()) for n in names}) == 1


def test_the_fixed_keys_are_distinct_and_complete() -> None:
    """all_fixed lists seventeen different keys, one per property."""
    k = Keys("q")
    fixed = k.all_fixed()
    assert len(fixed) == len(set(fixed)) == 17
    assert fixed == [k.queued, k.processing, k.retrying, k.completed, k.dead, k.clock, k.wake,
                     k.counters, k.workers, k.workers_seen, k.limits, k.limiter, k.slots,
                     k.throttled, k.scheduled, k.cancelled, k.paused]  # fmt: skip


def test_a_job_key_is_the_prefix_followed_by_the_id() -> None:
    """Scripts append popped ids to job_prefix: the result must equal job(id)."""
    k = Keys("q")
    assert k.job("j-1") == k.job_prefix + "j-1" == "jobsim:{q}:job:j-1"


def test_two_queues_share_no_key() -> None:
    """Queues with different names never collide, even when one name prefixes the other."""
    a, b = Keys("q"), Keys("q1")
    assert not set(a.all_fixed()) & set(b.all_fixed())
    assert not a.job("1:x").startswith(b.job_prefix)


@pytest.mark.parametrize("name", ["a", "A-z_0.9:x", "x" * 64])
def test_valid_queue_names_are_accepted(name: str) -> None:
    """1-64 characters of letters, digits, _ . : - make a queue name."""
    assert Keys(name).name == name


@pytest.mark.parametrize("name", ["", "x" * 65, "has space", "brace{", "slash/", "é", "\na"])
def test_invalid_queue_names_raise_invalid_input_naming_the_field(name: str) -> None:
    """Anything else is refused before a key is built (braces would break the hash tag)."""
    with pytest.raises(InvalidInputError) as info:
        Keys(name)
    assert info.value.field == "name" and info.value.value == name


def test_a_queue_name_with_a_trailing_newline_is_refused() -> None:
    """'orders\\n' is not 1-64 letters, digits, _ . : -, so it must be refused like '\\na'."""
    with pytest.raises(InvalidInputError):
        Keys("orders\n")


def test_a_busy_queue_writes_only_keys_named_here(make_queue, client) -> None:
    """After submits and a drain, every key in Redis is one of this queue's named keys."""
    queue = make_queue()
    ids = [queue.submit("noop", i) for i in range(5)]
    with WorkerPool(queue, 2):
        queue.wait_until_drained(timeout_s=30)
    keys = Keys(queue.name)
    known = set(keys.all_fixed()) | {keys.job(i) for i in ids}
    for name in client.keys("*"):
        assert name in known or name.startswith((keys.reply(""), keys.stop(""))), name


def test_a_notify_key_is_the_prefix_followed_by_the_id() -> None:
    """Scripts append a job id to notify_prefix: the result must equal notify(id)."""
    k = Keys("q")
    assert k.notify("j-1") == k.notify_prefix + "j-1" == "jobsim:{q}:notify:j-1"
