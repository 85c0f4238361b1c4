"""How ``jobsim serve`` runs the application under uvicorn, bounded against slow or greedy
clients.

uvicorn closes a connection left idle *after* a response (``timeout_keep_alive``), but not one
that never finishes its first request: a client that connects and sends nothing, or sends its
headers a byte at a time (slow loris), holds a connection for ever. :func:`guarded_protocol`
adds a read deadline: a whole request (headers and body) must arrive within ``read_timeout_s``
of the connection opening or of the previous response, or the connection is closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ServerLimits:
    """The limits ``jobsim serve`` gives uvicorn.

    Attributes:
        read_timeout_s: a whole request must arrive within this many seconds.
        keep_alive_s: an idle connection is closed this long after its last response.
        limit_concurrency: above this many open connections, a request is answered 503.
        max_header_bytes: the largest request line and headers accepted (h11's event size).
    """

    read_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    limit_concurrency: int = 1000
    max_header_bytes: int = 16 * 1024


class ReadDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline for receiving each request."""

    read_timeout_s: float = ServerLimits.read_timeout_s

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: Any = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._disarm_if_received()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()
            self._disarm_if_received()  # a pipelined request already read

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._cancel()
        self._waiting_for = self.cycle  # the cycle answered last; a new one means a request
        self._deadline = self.loop.call_later(self.read_timeout_s, self._expire)

    def _disarm_if_received(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle is not self._waiting_for and not cycle.more_body:
            self._cancel()

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def event_loop() -> str:
    """``"uvloop"`` where it is installed (the ``api`` extra brings it on Linux and macOS),
    else ``"asyncio"``. The HTTP parser stays h11, which enforces ``max_header_bytes``;
    httptools would not."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def uvicorn_config(app: Any, limits: ServerLimits, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration of ``jobsim serve``: ``options`` plus the ``limits``."""
    protocol = type("JobsimHTTP", (ReadDeadline,), {"read_timeout_s": limits.read_timeout_s})
    options.setdefault("access_log", False)  # a log line per request costs a tenth of a submit
    options.setdefault("loop", event_loop())
    return uvicorn.Config(
        app,
        http=protocol,
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]  # used as a float
        limit_concurrency=limits.limit_concurrency,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        **options,
    )
