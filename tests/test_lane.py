"""Script calls on held connections (``jobsim.scripts.lane``) and ``JobQueue.asubmit``: the
same records and errors as the redis-py path, a lost reply or a killed connection survived
once, a forked child on connections of its own, and no more connections than callers."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.connection

from jobsim import JobQueue, JobRequest, connect
from jobsim.connection import async_twin, client_url, one_server
from jobsim.errors import InvalidInputError, InvalidPriorityError, UnknownTaskError
from jobsim.localredis import LocalRedis, redis_server_binary
from jobsim.scripts.lane import MIN_POOL
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


def _in_threads(n: int, target: Callable[..., Any], *args: Any) -> None:
    """Run ``target(*args)`` in ``n`` threads at once and wait for all of them."""
    threads = [threading.Thread(target=target, args=args) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


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

    _in_threads(6, submit_many)
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


def test_script_calls_keep_a_connection_of_their_own(redis_server: LocalRedis) -> None:
    """The lane holds the connection a submit used; the pool answers other commands on
    another. (On redis-py's pooled path one connection would serve both.)"""
    queue = _queue(redis_server.url)
    queue.submit("noop")
    last = [c["cmd"] for c in queue.client.client_list()]
    assert last.count("evalsha") == 1 and last.count("client|list") == 1


def test_asubmit_runs_on_the_event_loop_without_a_thread(redis_server: LocalRedis) -> None:
    """On a plain server the call never leaves the loop's thread (a thread fallback starts
    the loop's default executor, one more thread for the rest of the loop)."""
    queue = _queue(redis_server.url)

    async def main() -> tuple[int, int]:
        before = threading.active_count()
        await queue.asubmit("noop")
        during = threading.active_count()
        await queue.aclose()
        return before, during

    before, during = asyncio.run(main())
    assert during == before
    assert len(queue.job_ids("queued")) == 1


def test_an_interrupt_between_send_and_read_leaves_no_reply_for_the_next_call(
    redis_server: LocalRedis,
) -> None:
    """An exception landing after the command went out and before its reply was read (a
    signal handler's, here raised by a trace hook as read_response starts): the connection
    must not go back with that reply still to come, or the next call reads it."""
    queue = _queue(redis_server.url)
    queue.submit("noop", job_id="taken")
    target = redis.connection.AbstractConnection.read_response.__code__
    armed = [True]

    def interrupt(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is target and armed[0]:
            armed[0] = False
            raise KeyboardInterrupt

    sys.settrace(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            queue.submit("noop", {"other": 1}, job_id="taken")  # its reply: DUPLICATE taken
    finally:
        sys.settrace(None)
    assert queue.submit("noop", job_id="fresh") == "fresh"  # not the DUPLICATE reply
    with pytest.raises(InvalidInputError):
        queue.submit("noop", {"other": 2}, job_id="taken")


def test_a_pool_with_a_connection_limit_keeps_serving_other_commands(
    redis_server: LocalRedis,
) -> None:
    """A burst of concurrent submits as large as the pool's limit: the lane keeps at most
    IDLE_MAX of those connections, so the pool still serves stats() afterwards; a blocking
    pool of two is never taken from at all (scripts load through it after a flush too)."""
    client = connect(redis_server.url)
    client.connection_pool.max_connections = MIN_POOL
    queue = JobQueue(client, f"lane-{uuid.uuid4().hex[:8]}")
    queue.submit("noop")
    connect(redis_server.url).client_pause(300)  # every submit below waits on its own socket
    _in_threads(MIN_POOL, queue.submit, "noop")
    assert queue.stats().totals["submitted"] == MIN_POOL + 1  # the pool still had room

    pool = redis.BlockingConnectionPool.from_url(
        redis_server.url, max_connections=2, timeout=0.5, decode_responses=True
    )
    small = JobQueue(redis.Redis(connection_pool=pool), f"lane-{uuid.uuid4().hex[:8]}")
    small.client.script_flush()
    both = threading.Barrier(2)

    def submit_small() -> None:
        both.wait()
        small.submit("noop")

    _in_threads(2, submit_small)
    assert small.stats().totals["submitted"] == 2


def test_asyncio_run_without_aclose_leaks_neither_loops_nor_connections(
    redis_server: LocalRedis,
) -> None:
    queue = _queue(redis_server.url)
    queue.submit("noop")
    before = _connections(queue)

    async def one() -> None:
        await queue.asubmit("noop")

    for _ in range(10):
        asyncio.run(one())
    gc.collect()
    assert _connections(queue) <= before + 1  # the newest loop's lane, until the next loop
    assert len(queue.job_ids("queued")) == 11


def test_aclose_with_calls_in_flight_closes_their_connections_too(
    redis_server: LocalRedis,
) -> None:
    queue = _queue(redis_server.url)
    queue.submit("noop")
    before = _connections(queue)

    async def main() -> int:
        calls = [asyncio.ensure_future(queue.asubmit("noop")) for _ in range(20)]
        await asyncio.sleep(0)  # every call has its connection and has sent
        await queue.aclose()
        await asyncio.gather(*calls)  # they still complete
        await asyncio.sleep(0.05)
        return _connections(queue)

    assert asyncio.run(main()) == before
    assert len(queue.job_ids("queued")) == 21


def test_asubmit_reaches_a_password_protected_unix_socket_through_a_hand_built_client(
    tmp_path: Path,
) -> None:
    """A client built by hand is not rebuilt for asyncio (its options are not all in a URL):
    asubmit runs submit in a thread, and reaches the server submit reaches."""
    sock = tmp_path / "r.sock"
    binary = redis_server_binary()
    assert binary is not None
    server = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--requirepass", "pw",
         "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(unix_socket_path=str(sock), password="pw", decode_responses=True)
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        queue = JobQueue(client, f"lane-{uuid.uuid4().hex[:8]}")
        queue.submit("noop")

        async def main() -> str:
            try:
                return await asyncio.wait_for(queue.asubmit("noop", job_id="a"), 10)
            finally:
                await queue.aclose()

        assert asyncio.run(main()) == "a"
        assert queue.status("a").status == "queued"
        # and a worker process given this client's URL reaches it too, password included
        assert connect(client_url(client)).ping()
    finally:
        server.terminate()
        server.wait(timeout=10)
