"""Redis Cluster and Sentinel: URLs that name several nodes, their clients, and their errors.

========================================================  =====================================
URL                                                       client
========================================================  =====================================
``redis+cluster://[user:pw@]host:port[,host:port…]``      ``redis.RedisCluster`` (seed nodes)
``rediss+cluster://…``                                    the same over TLS
``redis+sentinel://[user:pw@]host:port[,…]/service[/db]`` the master of ``service``, found
                                                          and re-found through the sentinels
``rediss+sentinel://…``                                   the same over TLS to the data nodes
========================================================  =====================================

The password belongs to the data nodes; sentinels that need one of their own take
``?sentinel_password=…``. Every key of a queue carries the queue's hash tag, so each queue lives
in one Cluster slot and every script call is routed whole to the master that owns it; a
Sentinel client re-asks the sentinels for the master whenever a connection fails, so a failover
costs the workers a reconnect. Redis replication is asynchronous: see docs/cluster.md for what
a failover loses and the durability knob (:class:`jobsim.QueueConfig` ``replicas``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from jobsim.errors import BackendError, ConnectError, InvalidURLError

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
NODE_SCHEMES = CLUSTER_SCHEMES + SENTINEL_SCHEMES
_MISROUTED = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "CROSSSLOT", "MASTERDOWN", "READONLY")


@dataclass(frozen=True)
class NodesURL:
    """A parsed cluster or sentinel URL."""

    scheme: str
    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    service: str = ""
    db: int = 0
    sentinel_password: str | None = None

    @property
    def tls(self) -> bool:
        """Whether the data nodes are reached over TLS."""
        return self.scheme.startswith("rediss")

    @property
    def sentinel(self) -> bool:
        """A Sentinel URL (else a Cluster URL)."""
        return self.scheme in SENTINEL_SCHEMES


def parse_nodes_url(url: str, shown: str) -> NodesURL:
    """Parse a ``redis+cluster://`` or ``redis+sentinel://`` URL.

    Example:
        >>> parse_nodes_url("redis+cluster://a:7000,b:7001", "").nodes
        (('a', 7000), ('b', 7001))

    Raises:
        InvalidURLError: a missing or non-numeric port, no host, no service name, a cluster
            URL naming a database (a cluster has only database 0).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in NODE_SCHEMES:
        raise InvalidURLError(f"not a cluster or sentinel URL: {scheme!r}", url=shown)
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_node(h, shown) for h in hosts.split(","))
    options = dict(parse_qsl(query, keep_blank_values=True))
    password = options.get("password", password)
    segments = [s for s in path.split("/") if s]
    service, db = "", "0"
    if scheme in SENTINEL_SCHEMES:
        if not segments:
            raise InvalidURLError("a sentinel URL names its service: …/service_name", url=shown)
        service, *more = segments
        db = more[0] if more else options.get("db", "0")
    elif segments or options.get("db", "0") != "0":
        raise InvalidURLError("a Redis Cluster has only database 0", url=shown)
    if not db.isdigit():
        raise InvalidURLError(f"database {db!r} is not a number", url=shown)
    return NodesURL(
        scheme, nodes, username, password, service, int(db), options.get("sentinel_password")
    )


def _node(text: str, shown: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = text, "6379" if not text.endswith("]") else ""
    host = host.strip("[]")
    if not host:
        raise InvalidURLError("a node of the URL has no host", url=shown)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidURLError(f"node {text!r} has no valid port", url=shown)
    return host, int(port)


def nodes_client(parsed: NodesURL, shown: str, *, timeout_s: float) -> Any:
    """Connect to a cluster or to a sentinel-managed master, and check it answers.

    Raises:
        ConnectError: no seed node reachable, no master for the service, refused
            credentials, or a cluster that is not serving all its slots.
    """
    try:
        client: Any = (
            _sentinel_master(parsed, timeout_s) if parsed.sentinel else _cluster(parsed, timeout_s)
        )
        client.ping()
        if not parsed.sentinel:
            state = client.cluster_info(target_nodes=RedisCluster.RANDOM)["cluster_state"]
            if state != "ok":
                raise ConnectError(f"Redis Cluster is {state}, not ok", url=shown)
        return client
    except MasterNotFoundError:
        raise ConnectError(
            f"no sentinel names a master for service {parsed.service!r}", url=shown
        ) from None
    except redis.AuthenticationError as exc:
        raise ConnectError(f"Redis refused the credentials: {exc}", url=shown) from None
    except (redis.RedisError, RedisClusterException) as exc:
        raise ConnectError(f"cannot reach Redis: {exc}", url=shown) from None


def _common(parsed: NodesURL, timeout_s: float) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": timeout_s,
        "username": parsed.username,
        "password": parsed.password,
    }
    if parsed.tls:
        kw["ssl"] = True
    return kw


class _Cluster(RedisCluster):
    """A ``RedisCluster`` whose own exceptions (a slot no node covers mid-failover, no node
    reachable while it re-reads the slot map) are ``redis.RedisError`` like every other
    Redis failure, so the workers' retry loops and the callers' handlers treat them alike."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisClusterException as exc:
            raise redis.exceptions.ClusterError(str(exc)) from exc


def _cluster(parsed: NodesURL, timeout_s: float) -> RedisCluster:
    # Retries span a failover (a replica takes over after cluster-node-timeout): a moved
    # slot or a dead master makes the client refresh its slot map and call again.
    return _Cluster(
        startup_nodes=[ClusterNode(h, p) for h, p in parsed.nodes],  # type: ignore[no-untyped-call]
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 6),
        **_common(parsed, timeout_s),
    )


def _sentinel_master(parsed: NodesURL, timeout_s: float) -> redis.Redis:
    sentinel_kw: dict[str, Any] = {
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 1),
    }
    if parsed.sentinel_password:
        sentinel_kw["password"] = parsed.sentinel_password
    sentinel = Sentinel(list(parsed.nodes), sentinel_kwargs=sentinel_kw)  # type: ignore[no-untyped-call]
    # once, without the retries below, so that a wrong service name fails fast
    sentinel.discover_master(parsed.service)  # type: ignore[no-untyped-call]
    # A failed connection asks the sentinels for the master again: after a failover the
    # retries land on the promoted replica.
    master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        parsed.service,
        db=parsed.db,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 8),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError],
        **_common(parsed, timeout_s),
    )
    return master


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a Redis Cluster client."""
    return isinstance(client, RedisCluster)


def wait_replicas(client: Any, key: str, replicas: int, timeout_ms: int) -> int:
    """``WAIT replicas timeout_ms`` on the master that holds ``key``; returns how many
    replicas acknowledged every write this connection made so far.

    On a cluster the command goes to the node that owns ``key``'s slot; on one server (or a
    sentinel-managed master) to the connection's server. Each call takes its own connection
    from the pool, which is why the scripts' writes and this WAIT must run on one
    connection: see :func:`on_one_connection`.
    """
    if is_cluster(client):
        node = client.get_node_from_key(key)
        return int(client.execute_command("WAIT", replicas, timeout_ms, target_nodes=node))
    return int(client.execute_command("WAIT", replicas, timeout_ms))


@contextlib.contextmanager
def mapped_errors(shown: str) -> Iterator[None]:
    """Raise what a cluster or a failover answers as :class:`BackendError`.

    Mis-routed calls (MOVED, ASK) that outlived the client's retries, a cluster that is down
    or cannot cover a slot, and a write to a read-only replica become one error naming the
    (masked) URL. A lost connection stays ``redis.ConnectionError``, which every caller of
    the queue already treats as "try again" (the HTTP API answers 503).
    """
    try:
        yield
    except (redis.exceptions.ClusterError, RedisClusterException) as exc:
        raise BackendError(f"Redis Cluster cannot serve the call: {exc}", url=shown) from exc
    except redis.ResponseError as exc:
        routed = (redis.ReadOnlyError, redis.exceptions.AskError, redis.exceptions.TryAgainError)
        if not str(exc).startswith(_MISROUTED) and not isinstance(exc, routed):
            raise
        raise BackendError(f"Redis cannot serve the call here: {exc}", url=shown) from exc
