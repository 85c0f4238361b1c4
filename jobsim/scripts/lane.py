"""Script calls on connections held for them: one packed command out, one reply back.

redis-py's ``client.evalsha(...)`` spends about 40 µs of CPU per call on this machine beside
the socket work (the pool check-out and check-in, command hooks, observability): as much as
the send and the receive themselves. A script call needs none of it, so :class:`Lane` keeps
a few of the pool's connections and calls them directly: the same connection class, the
client's own timeouts, health checks, retry policy and reply decoding, less work.
:class:`AsyncLane` does the same on a ``redis.asyncio`` client, for
:meth:`jobsim.JobQueue.asubmit`. ``benchmarks/submit_vs_huey.py`` measures the difference.

A connection is taken from the lane's idle list (a new one from the pool when all are busy)
and put back after the call, so each is used by one caller at a time. A call that did not
read its reply in full (a lost connection, a timeout, a cancelled task, an interrupt that
lands between the send and the read) disconnects its connection before putting it back, so
none goes back with a reply still to come; its next use reconnects. The lane keeps at most
:data:`IDLE_MAX` idle connections out of the pool (others go back to it), and is used only
on a pool with room to spare (:func:`lane_suits`): a connection limit is the pool's to keep.
A lost connection is retried by the client's retry policy, which every queue script
tolerates: a repeated call is recognised as a replay (see ``docs/guarantees.md``). A forked
child starts with no held connections: it must not read replies meant for its parent.
"""

from __future__ import annotations

import os
from typing import Any

import hiredis
import redis
import redis.asyncio

from jobsim.connection import one_server

IDLE_MAX = 4
"""Most idle connections a lane keeps; one that ends a call beyond them goes back to the pool."""
MIN_POOL = 16
"""Smallest ``max_connections`` of a pool the lane takes connections from."""


def lane_suits(client: Any) -> bool:
    """Whether script calls on ``client`` may take the lane: one fixed server
    (:func:`jobsim.connection.one_server`) through a plain, non-blocking pool allowing at
    least :data:`MIN_POOL` connections (redis-py's default allows 100)."""
    pool = getattr(client, "connection_pool", None)
    return (
        one_server(client)
        and type(pool) is redis.ConnectionPool
        and pool.max_connections >= MIN_POOL
    )


class Lane:
    """Direct script calls on the connections of one synchronous client's pool."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._idle: list[Any] = []
        self._pid = os.getpid()

    def call(self, *args: Any) -> Any:
        """Send one command (``"EVALSHA", sha, ...``) and return its decoded reply.

        Raises:
            redis.ResponseError: the server's error reply (``NoScriptError`` included).
            redis.ConnectionError: the connection failed more often than the client's retry
                policy allows.
        """
        if os.getpid() != self._pid:  # a forked child must not share its parent's sockets
            self._idle, self._pid = [], os.getpid()
        packed = _packed(args)
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._pool.get_connection()
        try:
            return conn.retry.call_with_retry(
                lambda: _exchange(conn, packed), lambda _error: conn.disconnect()
            )
        except redis.ResponseError:
            raise  # an error reply, read in full: the connection is in step
        except BaseException:
            conn.disconnect()  # interrupted between send and read: its reply may still come
            raise
        finally:
            if len(self._idle) < IDLE_MAX:
                self._idle.append(conn)
            else:
                self._pool.release(conn)

    def close(self) -> None:
        """Give the held connections back to the pool."""
        idle, self._idle = self._idle, []
        for conn in idle:
            self._pool.release(conn)


def _packed(args: tuple[Any, ...]) -> list[bytes]:
    """The command in RESP, packed by hiredis in C: a seventh of redis.asyncio's own packer's
    cost and a third of the synchronous one's (the wrapping Python is most of theirs)."""
    try:
        return [hiredis.pack_command(args)]
    except TypeError as exc:  # as redis-py raises for an argument it cannot send
        raise redis.DataError(str(exc)) from None


def _exchange(conn: Any, packed: Any) -> Any:
    conn.send_packed_command(packed)
    return conn.read_response()


class AsyncLane:
    """Direct script calls on the connections of one ``redis.asyncio`` client (bound, as
    its connections are, to the event loop it is used on)."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.closed = False
        self._pool = client.connection_pool
        self._idle: list[Any] = []

    async def call(self, *args: Any) -> Any:
        """As :meth:`Lane.call`, awaiting the reply."""
        packed = _packed(args)
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]

        async def exchange() -> Any:
            await conn.send_packed_command(packed)
            return await conn.read_response()

        async def failed(_error: BaseException) -> None:
            await conn.disconnect()

        try:
            return await conn.retry.call_with_retry(exchange, failed)
        except redis.ResponseError:
            raise
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        finally:
            if self.closed:  # after aclose, a call still in flight keeps nothing
                await conn.disconnect(nowait=True)
            elif len(self._idle) < IDLE_MAX:
                self._idle.append(conn)
            else:
                await self._pool.release(conn)

    async def aclose(self) -> None:
        """Close the held connections and the client; calls still in flight then close
        theirs when they end."""
        self.closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect()
        await self.client.aclose()
