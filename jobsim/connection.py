"""Connecting to Redis: the embedded fakeredis backend, or a real server by URL.

``connect()`` with no URL (and no ``JOBSIM_REDIS_URL``) returns a client of the embedded
backend: one in-process fakeredis server, with Lua, shared by every thread of the process.
Process workers cannot share memory with it, so :func:`serve_embedded` exposes that same
server on a Unix socket only this user can open. ``redis+cluster://`` and
``redis+sentinel://`` URLs make Cluster and Sentinel clients (:mod:`jobsim.clusters`).
"""

from __future__ import annotations

import atexit
import itertools
import os
import select
import shutil
import socket
import socketserver
import tempfile
import threading
import weakref
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import fakeredis
import redis
import redis.asyncio
from fakeredis._clients._tcp_server import TCPFakeRequestHandler
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from jobsim.clusters import NODE_SCHEMES, nodes_client, parse_nodes_url
from jobsim.errors import ConnectError, InvalidURLError

ENV_URL = "JOBSIM_REDIS_URL"
SCHEMES = ("redis", "rediss", "unix", *NODE_SCHEMES)

_EMBEDDED = fakeredis.FakeServer()
_bridges: dict[int, tuple[Any, str]] = {}
_bridges_lock = threading.Lock()
# The URL each client was made from, so worker processes reach the same deployment
# (a Cluster or Sentinel client has no one host to rebuild it from).
_urls: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


_RETRIES = 5
"""A dropped connection is retried (the scripts recognise a replayed call), so a CLIENT KILL
or a failover costs a reconnect, not an error."""
_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "health_check_interval": 30,
    "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
}


def connect(url: str | None = None, *, timeout_s: float = 5.0) -> redis.Redis:
    """Return a Redis client: embedded by default, or a real server for a URL.

    Example:
        >>> client = connect()                                  # embedded, no server needed
        >>> client = connect("redis://:secret@127.0.0.1:6379/0")  # doctest: +SKIP
        >>> client = connect("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")  # doctest: +SKIP
        >>> client = connect("redis+sentinel://10.0.0.1:26379/jobs")  # doctest: +SKIP

    Args:
        url: ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL with optional password and
            db; ``redis+cluster://`` / ``rediss+cluster://`` naming seed nodes of a Redis
            Cluster (a ``redis.RedisCluster`` is returned); ``redis+sentinel://`` naming
            sentinels and the service (the master's client, re-found after a failover).
            ``None`` reads ``JOBSIM_REDIS_URL``, and without it uses the embedded backend.
        timeout_s: how long to wait for the server to answer the first ``PING``.

    Raises:
        InvalidURLError: the URL is malformed or its scheme is not supported.
        ConnectError: the server cannot be reached, or refused the credentials.
    """
    url = url if url is not None else os.environ.get(ENV_URL) or None
    if url is None:
        return embedded_client()
    shown = mask_url(url)
    if url.partition("://")[0] in NODE_SCHEMES:
        nodes: Any = nodes_client(parse_nodes_url(url, shown), shown, timeout_s=timeout_s)
        _urls[nodes] = url
        return nodes  # type: ignore[no-any-return]
    _check_url(url, shown)
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, retry=Retry(_backoff(), _RETRIES), **_OPTIONS
        )
        client.ping()
        _refuse_cluster_node(client, shown)
    except (ValueError, TypeError) as exc:
        raise InvalidURLError(f"malformed Redis URL: {exc}", url=shown) from None
    except redis.AuthenticationError as exc:
        raise ConnectError(f"Redis refused the credentials: {exc}", url=shown) from None
    except redis.RedisError as exc:
        raise ConnectError(f"cannot reach Redis: {exc}", url=shown) from None
    _urls[client] = url
    return client


def _backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=1.0, base=0.01)


def one_server(client: Any) -> bool:
    """Whether ``client`` talks to one fixed Redis server through a plain connection pool:
    not the embedded backend, a Cluster client (no pool) or a Sentinel pool (whose
    connections must go back to it to follow a failover to the new master)."""
    pool = getattr(client, "connection_pool", None)
    return (
        isinstance(pool, redis.ConnectionPool)
        and not isinstance(pool, SentinelConnectionPool)
        and pool.connection_class.__module__.startswith("redis.")
    )


def async_twin(client: redis.Redis) -> redis.asyncio.Redis | None:
    """A ``redis.asyncio`` client of the same server as ``client``, with the same options;
    ``None`` (callers then use ``client`` from a thread) unless :func:`connect` made
    ``client`` for one server (:func:`one_server`): not for the embedded backend, a Cluster
    or Sentinel deployment, or a client built by hand."""
    if not one_server(client) or client not in _urls:  # a client built by hand: its options
        return None  # (credentials, TLS, retry policy) are not all in a URL
    url = _urls[client]
    kw = client.connection_pool.connection_kwargs
    return redis.asyncio.Redis.from_url(
        url,
        socket_connect_timeout=kw.get("socket_connect_timeout"),
        socket_timeout=kw.get("socket_timeout"),
        retry=AsyncRetry(_backoff(), _RETRIES),
        **_OPTIONS,
    )


def _refuse_cluster_node(client: redis.Redis, shown: str) -> None:
    """A plain URL naming a Cluster node would get MOVED for most queues: say so now."""
    try:
        enabled = client.info("cluster").get("cluster_enabled")
    except redis.ResponseError:  # a server without the section (fakeredis) is no cluster
        return
    if enabled == 1:
        raise ConnectError(
            "this server is a Redis Cluster node; use a redis+cluster:// URL", url=shown
        )


def server_time_s(client: redis.Redis) -> float:
    """Redis ``TIME`` in seconds: the one clock every worker and host shares."""
    reply: Any = client.time()
    return int(reply[0]) + int(reply[1]) / 1e6


def embedded_client(server: Any = None) -> redis.Redis:
    """A client of the embedded backend (or of ``server``, a ``fakeredis.FakeServer``)."""
    return fakeredis.FakeRedis(server=server or _EMBEDDED, decode_responses=True)


def is_embedded(client: redis.Redis) -> bool:
    """Whether ``client`` talks to an in-process fakeredis server."""
    return isinstance(client, fakeredis.FakeRedis)


def client_url(client: redis.Redis) -> str:
    """A URL another process can use to reach the same data as ``client``.

    For an embedded client this starts (once per fakeredis server) a private Unix-socket
    bridge to the in-process server; see :func:`serve_embedded`.
    """
    if is_embedded(client):
        return serve_embedded(client)
    if client in _urls:
        return _urls[client]
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        query = {"db": kw.get("db", 0)} | {k: kw[k] for k in ("username", "password") if kw.get(k)}
        return f"unix://{kw['path']}?{urlencode(query)}"
    scheme = "rediss" if client.connection_pool.connection_class is redis.SSLConnection else "redis"
    auth = ""
    if kw.get("password"):
        auth = f"{kw.get('username') or ''}:{kw['password']}@"
    return (
        f"{scheme}://{auth}{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
    )


def shown_url(client: Any) -> str:
    """The URL of ``client`` for messages: password masked, ``embedded`` for fakeredis; never
    starts the embedded bridge."""
    if is_embedded(client):
        return "embedded"
    if client in _urls:
        return mask_url(_urls[client])
    if not hasattr(client, "connection_pool"):  # a cluster client built by hand
        return f"<{type(client).__name__}>"
    return mask_url(client_url(client))


def serve_embedded(client: redis.Redis) -> str:
    """Expose an embedded client's fakeredis server to this user's other processes.

    The bridge is a Unix socket, mode 0600, in a fresh 0700 temporary directory: the file
    system lets only this user (and root) connect, where a loopback TCP port would let any
    local user read and rewrite the queue (fakeredis does not enforce ``requirepass``).
    In-process clients keep using the server directly. The bridge serves the very same data,
    so worker processes and the parent see one queue; it lives until the process exits,
    which removes the directory.

    Returns:
        A ``unix://`` URL for :func:`connect`.
    """
    server = client.connection_pool.connection_kwargs["server"]
    with _bridges_lock:
        if id(server) in _bridges:
            return _bridges[id(server)][1]
        directory = tempfile.mkdtemp(prefix="jobsim-")  # 0700, owned by this user
        path = os.path.join(directory, "redis.sock")
        bridge = _UnixBridge(path, server)
        os.chmod(path, 0o600)
        atexit.register(_remove_directory, directory, os.getpid())
        thread = threading.Thread(target=bridge.serve_forever, name="jobsim-embedded-bridge")
        thread.daemon = True
        thread.start()
        url = f"unix://{path}?db=0"
        _bridges[id(server)] = (bridge, url)
        return url


class _BridgeHandler(TCPFakeRequestHandler):
    """fakeredis' TCP request handler on a Unix socket, whose peers have no address: it keys
    its connections by address, so each gets a unique one."""

    def setup(self) -> None:
        self.client_address = ("unix", next(self.server.client_ids))
        super().setup()
        # fakeredis makes the socket non-blocking and then writes replies with sendall(),
        # which fails once a Unix socket's small buffer is full (any reply over ~200 kB).
        self.wfile._sock = _PatientSocket(self.connection)  # type: ignore[attr-defined]


class _PatientSocket:
    """The write side of a non-blocking socket that waits for room instead of failing."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view) :]
            except BlockingIOError:
                select.select([], [self._sock], [], 1.0)

    def fileno(self) -> int:
        return self._sock.fileno()


class _UnixBridge(socketserver.ThreadingUnixStreamServer):
    """The attributes fakeredis' request handler expects of a ``TcpFakeServer``."""

    daemon_threads = True

    def __init__(self, path: str, fake_server: Any) -> None:
        super().__init__(path, _BridgeHandler)
        self.fake_server = fake_server
        self.client_ids = itertools.count()
        self.clients: dict[Any, Any] = {}
        self._shutdown_event = threading.Event()


def _remove_directory(directory: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:  # a forked child must not remove its parent's socket
        shutil.rmtree(directory, ignore_errors=True)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (in the netloc and in a ``?password=``
    or ``?sentinel_password=`` query parameter, which redis-py and Sentinel URLs read).
    A netloc naming several nodes (``host:port,host:port``) is masked the same way."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    secret_keys = ("password", "sentinel_password")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    has_password = bool(at) and ":" in userinfo
    if not has_password and not any(k in secret_keys for k, _ in pairs):
        return url  # nothing secret: shown exactly as given
    if any(k in secret_keys for k, _ in pairs):
        query = urlencode([(k, "***" if k in secret_keys else v) for k, v in pairs], safe="*")
    netloc = parts.netloc
    if has_password:
        netloc = f"{userinfo.partition(':')[0]}:***@{hosts}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _check_url(url: str, shown: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError as exc:
        raise InvalidURLError(f"malformed Redis URL: {exc}", url=shown) from None
    if parts.scheme not in SCHEMES:
        raise InvalidURLError(
            f"unsupported scheme {parts.scheme!r}; use one of {', '.join(SCHEMES)}", url=shown
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise InvalidURLError("Redis URL has no host", url=shown)
    if parts.scheme == "unix" and not parts.path:
        raise InvalidURLError("unix URL has no socket path", url=shown)
    db = parts.path.lstrip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise InvalidURLError(f"database {db!r} is not a number", url=shown)
    del port
