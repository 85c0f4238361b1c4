"""Script calls on connections held for them: one packed command out, one reply back.

redis-py's ``client.evalsha(...)`` spends about 40 µs of CPU per call on this machine beside
the socket work (the pool check-out and check-in, command hooks, observability): as much as
the send and the receive themselves. A script call needs none of it, so :class:`Lane` keeps
a few of the pool's connections and calls them directly: the same connection class, the
client's own timeouts, health checks, retry policy and reply decoding, less work.
:class:`AsyncLane` does the same on a ``redis.asyncio`` client, for
:meth:`jobsim.JobQueue.asubmit`. ``benchmarks/submit_vs_huey.py`` measures the difference.

A connection is taken from the lane's idle list (a new one from the pool when all are busy)
and put back after the call, so each is used by one caller at a time. redis-py disconnects
a connection on any exception while it sends or reads (a lost connection, a timeout, a
cancelled task), so none goes back mid-reply; its next use reconnects. A lost connection is
retried by the client's retry policy, which every queue script tolerates: a repeated call is
recognised as a replay (see ``docs/guarantees.md``). A forked child starts with no held
connections: it must not read replies meant for its parent.
"""

from __future__ import annotations

import os
from typing import Any

import hiredis
import redis
import redis.asyncio


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
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._pool.get_connection()
        packed = _packed(args)
        try:
            return conn.retry.call_with_retry(
                lambda: _exchange(conn, packed), lambda _error: conn.disconnect()
            )
        finally:
            self._idle.append(conn)

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
        self._pool = client.connection_pool
        self._idle: list[Any] = []

    async def call(self, *args: Any) -> Any:
        """As :meth:`Lane.call`, awaiting the reply."""
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        packed = _packed(args)

        async def exchange() -> Any:
            await conn.send_packed_command(packed)
            return await conn.read_response()

        async def failed(_error: BaseException) -> None:
            await conn.disconnect()

        try:
            return await conn.retry.call_with_retry(exchange, failed)
        finally:
            self._idle.append(conn)

    async def aclose(self) -> None:
        """Give the held connections back and close the client."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool.release(conn)
        await self.client.aclose()
