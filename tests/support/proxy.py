"""A TCP proxy that loses Redis replies on purpose, for tests.

When a reply is to be dropped, the proxy has already forwarded the request to Redis; it
swallows whatever the server sends back after that request and closes both sockets. The
client sees its connection die with the command executed but unanswered, so redis-py (whose
clients :func:`jobsim.connect` builds with ``Retry`` on ``ConnectionError``) reconnects and
sends the very same command again. That is the lost-reply case every non-idempotent script
must recognise as a replay.

Example:
    >>> with ReplyDroppingProxy.for_url(server.url) as proxy:      # doctest: +SKIP
    ...     client = jobsim.connect(proxy.url)
    ...     proxy.drop_next_replies(1, commands=("INCRBY",))
    ...     client.incr("n")                                        # runs twice: 2

The proxy works on bytes, not on RESP: "the reply to a request" is every byte the server
sends after the request was forwarded. redis-py waits for each reply before it sends the
next command on a connection (a pipeline travels as one request), so that is the reply.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
from collections.abc import Iterable
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 65536


class ReplyDroppingProxy:
    """Forward 127.0.0.1:<free port> to a Redis server, dropping chosen replies.

    Args:
        target_host: the server's host, or None with ``target_unix``.
        target_port: the server's TCP port.
        target_unix: path of the server's unix socket instead of host and port.
        auth: ``user:password@`` (or ``:password@``) to put in :attr:`url`; the proxy only
            forwards bytes, so AUTH passes through untouched.
        db: the database number in :attr:`url`.
    """

    def __init__(
        self,
        target_host: str | None = None,
        target_port: int | None = None,
        *,
        target_unix: str | None = None,
        auth: str = "",
        db: int = 0,
    ) -> None:
        if target_unix is None and (target_host is None or target_port is None):
            raise ValueError("give target_host and target_port, or target_unix")
        self.target_host = target_host
        self.target_port = target_port
        self.target_unix = target_unix
        self._auth = auth
        self._db = db
        self._lock = threading.Lock()
        self._budget = 0  # replies still to drop by drop_next_replies
        self._probability = 0.0
        self._rng = random.Random(0)
        self._commands: tuple[bytes, ...] | None = None
        self.dropped = 0  # replies swallowed so far
        self.requests = 0  # requests forwarded so far
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    @classmethod
    def for_url(cls, url: str) -> ReplyDroppingProxy:
        """A proxy in front of the server a ``redis://`` or ``unix://`` URL names.

        The proxy's :attr:`url` keeps the target's credentials and database.

        Raises:
            ValueError: another scheme (``rediss://``: the proxy cannot see inside TLS).
        """
        parts = urlsplit(url)
        auth = ""
        if parts.password is not None:
            auth = f"{parts.username or ''}:{parts.password}@"
        if parts.scheme == "redis":
            db = int(parts.path.lstrip("/") or 0)
            return cls(parts.hostname or "localhost", parts.port or 6379, auth=auth, db=db)
        if parts.scheme == "unix":
            query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
            return cls(target_unix=parts.path, auth=auth, db=int(query.get("db", 0)))
        raise ValueError(f"cannot proxy a {parts.scheme}:// URL")

    @property
    def url(self) -> str:
        """``redis://[auth@]127.0.0.1:<port>/<db>``: connect here instead of the target."""
        return urlunsplit(("redis", f"{self._auth}127.0.0.1:{self.port}", f"/{self._db}", "", ""))

    # --- control --------------------------------------------------------------------------

    def drop_next_replies(self, n: int, *, commands: Iterable[str] | None = None) -> None:
        """Drop the replies to the next ``n`` requests (naming one of ``commands``, if given)."""
        with self._lock:
            self._budget = n
            self._probability = 0.0
            self._commands = _names(commands)

    def drop_probability(
        self, p: float, seed: int, *, commands: Iterable[str] | None = None
    ) -> None:
        """Drop each reply (to a request naming one of ``commands``) with probability ``p``.

        The draws come from ``random.Random(seed)``; which request meets which draw depends
        on thread scheduling.
        """
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], not {p}")
        with self._lock:
            self._budget = 0
            self._probability = p
            self._rng = random.Random(seed)
            self._commands = _names(commands)

    def stop_dropping(self) -> None:
        """Forward every reply from now on."""
        with self._lock:
            self._budget = 0
            self._probability = 0.0

    def _should_drop(self, request: bytes) -> bool:
        with self._lock:
            self.requests += 1
            if self._commands is not None:
                head = request[:64].upper()  # a RESP array whose first bulk string is the name
                if not any(name in head for name in self._commands):
                    return False
            if self._budget > 0:
                self._budget -= 1
                return True
            return self._probability > 0 and self._rng.random() < self._probability

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> ReplyDroppingProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start accepting connections."""
        self._acceptor.start()

    def close(self) -> None:
        """Stop accepting and cut every open connection."""
        self._closed.set()
        _close(self._listener)
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            _close(sock)
        for thread in [self._acceptor, *self._threads]:
            if thread.is_alive():
                thread.join(2.0)

    # --- forwarding -----------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(
                target=self._serve, args=(client,), name="proxy-conn", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _connect_target(self) -> socket.socket:
        if self.target_unix is not None:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.target_unix)
        else:
            server = socket.create_connection((self.target_host, self.target_port), timeout=5)
            server.settimeout(None)
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return server

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            server = self._connect_target()
        except OSError:
            _close(client)
            return
        with self._lock:
            self._sockets |= {client, server}
        try:
            self._pump(client, server)
        finally:
            with self._lock:
                self._sockets -= {client, server}
            _close(client)
            _close(server)

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        dropping = False  # a request was forwarded whose reply must not reach the client
        while not self._closed.is_set():
            try:
                readable, _, _ = select.select([client, server], [], [], 0.5)
                if client in readable:
                    data = client.recv(_CHUNK)
                    if not data:
                        return
                    server.sendall(data)
                    # A long request may arrive in chunks; its reply still follows the last.
                    if not dropping and self._should_drop(data):
                        dropping = True
                if server in readable:
                    data = server.recv(_CHUNK)
                    if not data:
                        return
                    if dropping:
                        with self._lock:
                            self.dropped += 1
                        return  # the server executed it; the client never hears so
                    client.sendall(data)
            except (OSError, ValueError):  # a socket closed under us (close(), or a peer)
                return


def _names(commands: Iterable[str] | None) -> tuple[bytes, ...] | None:
    if commands is None:
        return None
    return tuple(b"$%d\r\n%s\r\n" % (len(c), c.upper().encode()) for c in commands)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already shut down, or never connected
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
