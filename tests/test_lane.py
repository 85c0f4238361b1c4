"""Script calls on held connections (``jobsim.scripts.lane``) and ``JobQueue.asubmit``: the
same records and errors as the redis-py path, a lost reply or a killed connection survived
once, a forked child on connections of its own, and no more connections than callers."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from jobsim import JobQueue, JobRequest, connect
from jobsim.connection import async_twin, one_server
from jobsim.errors import InvalidInputError, InvalidPriorityError, UnknownTaskError
from jobsim.localredis import LocalRedis
from tests.support.backends import backend_url
from tests.support.proxy import ReplyDroppingProxy

RECORD_FIELDS = ("task", "payload", "priority", "max_retries", "max_attempts", "status")


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest) -> str:
    """A redis:// or unix:// URL of a real server, or of a fresh fakeredis bridge: either
    way a plain client of it takes the lane."""
    return backend_url(backend, request)


def _queue(url: str) -> JobQueue:
    return JobQueue(connect(url), f"lane-{uuid.uuid4().hex[:8]}")


def _record(queue: JobQueue, job_id: str) -> dict[str, str]:
    fields = queue.client.hgetall(queue.keys.job(job_id))
    return {k: fields[k] for k in RECORD_FIELDS}


def _connections(queue: JobQueue) -> int:
    return len(queue.client.client_list())


def test_a_plain_client_takes_the_lane_and_the_embedded_backend_does_not(url: str) -> None:
    assert one_server(connect(url))
    assert async_twin(connect(url)) is not None
    assert not one_server(connect())
    assert async_twin(connect()) is None


def test_asubmit_writes_the_record_submit_writes(url: str) -> None:
    queue = _queue(url)
    queue.submit("noop", {"n": 1}, priority=3, max_retries=2, job_id="sync")

    async def main() -> str:
        try:
            return await queue.asubmit("noop", {"n": 1}, priority=3, max_retries=2, job_id="as")
        finally:
            await queue.aclose()

    assert asyncio.run(main()) == "as"
    assert _record(queue, "as") == _record(queue, "sync")
    assert queue.stats().totals["submitted"] == 2
    assert queue.job_ids("queued") == ["sync", "as"]  # FIFO in a band


def test_asubmit_refuses_what_submit_refuses_and_writes_nothing(url: str) -> None:
    queue = _queue(url)
    queue.submit("noop", job_id="taken")
    before = queue.client.dbsize()

    async def main() -> None:
        with pytest.raises(UnknownTaskError):
            await queue.asubmit("no-such-task")
        with pytest.raises(InvalidPriorityError):
            await queue.asubmit("noop", priority=10**6)
        with pytest.raises(InvalidInputError) as clash:
            await queue.asubmit("noop", {"other": 1}, job_id="taken")
        assert clash.value.field == "job_id"
        with pytest.raises(InvalidInputError):
            await queue.asubmit_many([JobRequest("noop", job_id="a")] * 2)
        await queue.aclose()

    asyncio.run(main())
    assert queue.client.dbsize() == before
    assert queue.stats().totals["submitted"] == 1


def test_an_error_reply_leaves_the_held_connection_in_use(url: str) -> None:
    """DUPLICATE is an error reply read in full: the lane keeps using that connection."""
    queue = _queue(url)
    queue.submit("noop", job_id="j")
    held = _connections(queue)
    for _ in range(20):
        with pytest.raises(InvalidInputError):
            queue.submit("noop", {"x": 1}, job_id="j")
        queue.submit("noop")
    assert _connections(queue) == held
    assert queue.stats().totals["submitted"] == 21


@pytest.fixture
def proxy(url: str) -> Iterator[ReplyDroppingProxy]:
    with ReplyDroppingProxy.for_url(url) as p:
        yield p


def test_a_lost_submit_reply_is_sent_again_and_makes_one_job(proxy: ReplyDroppingProxy) -> None:
    """The script ran, its reply was lost, the lane's retry sent it again: a replay."""
    queue = _queue(proxy.url)
    proxy.drop_next_replies(1, commands=["EVALSHA"])
    job_id = queue.submit("noop", {"n": 1})
    assert proxy.dropped == 1
    assert queue.job_ids("queued") == [job_id]
    assert queue.stats().totals["submitted"] == 1


def test_a_lost_asubmit_reply_is_sent_again_and_makes_one_job(
    proxy: ReplyDroppingProxy,
) -> None:
    queue = _queue(proxy.url)

    async def main() -> list[str]:
        await queue.asubmit("noop")  # the async lane's connection is open
        proxy.drop_next_replies(1, commands=["EVALSHA"])
        ids = [await queue.asubmit("noop", {"n": 2})]
        ids.append(await queue.asubmit("noop", {"n": 3}))  # the reconnected connection works
        await queue.aclose()
        return ids

    ids = asyncio.run(main())
    assert proxy.dropped == 1
    assert queue.job_ids("queued")[1:] == ids
    assert queue.stats().totals["submitted"] == 3


def test_killed_connections_reconnect_for_both_lanes(redis_server: LocalRedis) -> None:
    queue = _queue(redis_server.url)  # (fakeredis has no CLIENT KILL)
    admin = connect(redis_server.url)

    async def main() -> None:
        for i in range(3):
            queue.submit("noop", job_id=f"s{i}")
            await queue.asubmit("noop", job_id=f"a{i}")
            admin.client_kill_filter(_type="normal", skipme=True)
        await queue.aclose()

    asyncio.run(main())
    assert len(queue.job_ids("queued")) == 6


def test_scripts_flushed_from_the_server_are_loaded_again(url: str) -> None:
    queue = _queue(url)

    async def main() -> None:
        await queue.asubmit("noop")
        queue.client.script_flush()
        await queue.asubmit("noop")
        queue.client.script_flush()
        queue.submit("noop")
        await queue.aclose()

    asyncio.run(main())
    assert len(queue.job_ids("queued")) == 3


def test_each_event_loop_gets_its_own_connections(url: str) -> None:
    """asyncio connections belong to one loop: a second ``asyncio.run`` must not reuse them."""
    queue = _queue(url)

    async def one(n: int, close: bool) -> None:
        await queue.asubmit("noop", {"n": n})
        if close:
            await queue.aclose()

    asyncio.run(one(1, close=False))  # left open: the next loop must not touch them
    asyncio.run(one(2, close=True))
    asyncio.run(one(3, close=True))
    assert len(queue.job_ids("queued")) == 3


def test_the_lane_holds_no_more_connections_than_concurrent_callers(url: str) -> None:
    queue = _queue(url)
    queue.submit("noop")
    baseline = _connections(queue)
    start = threading.Barrier(6)

    def submit_many() -> None:
        start.wait()
        for _ in range(200):
            queue.submit("noop")

    threads = [threading.Thread(target=submit_many) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 6 callers at most at once; the lane already held the one the first submit opened
    assert baseline < _connections(queue) <= baseline + 6 - 1
    assert len(queue.job_ids("queued", limit=2000)) == 1 + 6 * 200


def _child_submits(queue: JobQueue, done: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        job_id = queue.submit("noop", {"from": "child"})
        scripting = [c for c in queue.client.client_list() if c["cmd"] == "evalsha"]
        done.put((job_id, len(scripting)))
    except BaseException as exc:  # report, do not hang the parent
        done.put(repr(exc))


def test_a_forked_child_submits_on_a_connection_of_its_own(redis_server: LocalRedis) -> None:
    """A child forked after its parent used the lane opens its own connection for scripts:
    writing on the parent's inherited socket, each process could read the other's replies.
    The server sees two connections whose last command was EVALSHA, not one."""
    queue = _queue(redis_server.url)
    first = queue.submit("noop")
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    child = context.Process(target=_child_submits, args=(queue, done))
    child.start()
    reported = done.get(timeout=60)
    child.join(timeout=30)
    assert isinstance(reported, tuple), reported
    child_id, scripting = reported
    assert scripting == 2
    later = queue.submit("noop")  # the parent's own connection still pairs its replies
    assert sorted(queue.job_ids("queued")) == sorted([first, child_id, later])
    assert queue.status(child_id).payload == {"from": "child"}


def test_asubmit_on_the_embedded_backend_runs_submit_in_a_thread() -> None:
    queue = JobQueue(connect(), f"lane-{uuid.uuid4().hex[:8]}")

    async def main() -> str:
        return await queue.asubmit("noop", {"n": 1})

    job_id = asyncio.run(main())
    assert queue.status(job_id).status == "queued"
    queue.delete()


def test_a_connection_error_reaches_the_caller_once_retries_are_spent() -> None:
    with LocalRedis() as doomed:
        queue = _queue(doomed.url)
        queue.submit("noop")
        doomed.stop()
        with pytest.raises(redis.ConnectionError):
            queue.submit("noop")

        async def main() -> None:
            with pytest.raises(redis.ConnectionError):
                await queue.asubmit("noop")
            await queue.aclose()

        asyncio.run(main())
