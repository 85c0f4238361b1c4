"""Throwaway Redis Cluster and Sentinel deployments on free loopback ports, for tests and
benchmarks.

Example:
    >>> with LocalCluster(masters=3, replicas=1) as cluster:     # doctest: +SKIP
    ...     client = jobsim.connect(cluster.url)                  # redis+cluster://...
    ...     cluster.kill(cluster.master_port_of("jobsim:{default}:queued"))
    >>> with LocalSentinel() as deployment:                       # doctest: +SKIP
    ...     client = jobsim.connect(deployment.url)               # redis+sentinel://.../jobsim

Every server runs in its own process group in one temporary directory, without persistence
(``--save '' --appendonly no``): a killed master's data survives only in its replica, which
is exactly what a failover test needs. Timeouts are short (``node_timeout_ms``,
``down_after_ms``) so that a failover takes a second or two.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from jobsim.localredis import RedisServerError, free_port, redis_server_binary


def _binary(name: str) -> str:
    path = redis_server_binary() if name == "redis-server" else shutil.which(name)
    if path is None:
        raise RedisServerError(f"{name} is not installed (apt-get install redis-server)")
    return path


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 >= 65536:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _wait(what: str, predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if predicate():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RedisServerError(f"{what} not reached within {timeout_s:g} s")
        time.sleep(0.05)


class _Servers:
    """Server processes in one directory, each in its own process group."""

    def __init__(self, prefix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.args: dict[int, Sequence[str]] = {}

    def spawn(self, port: int, args: Sequence[str]) -> None:
        self.args[port] = args
        log = self.dir / f"{port}.log"
        self.procs[port] = subprocess.Popen(
            [_binary("redis-server"), *args, "--logfile", str(log)],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: killed as one, never orphaned
        )

    def wait_all_up(self, timeout_s: float) -> None:
        for port, proc in self.procs.items():
            probe = redis.Redis(port=port, socket_connect_timeout=0.2)
            try:

                def up(proc: subprocess.Popen[bytes] = proc, probe: redis.Redis = probe) -> bool:
                    if proc.poll() is not None:
                        raise RedisServerError(f"redis-server exited at start: see {self.dir}")
                    return bool(probe.ping())

                _wait(f"redis-server on port {port} answering", up, timeout_s)
            finally:
                probe.close()

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port`` (its whole process group)."""
        proc = self.procs.get(port)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def restart(self, port: int, timeout_s: float = 10.0) -> None:
        """Start the killed server on ``port`` again, with the arguments it first had."""
        self.spawn(port, self.args[port])
        probe = redis.Redis(port=port, socket_connect_timeout=0.2)
        try:
            _wait(f"redis-server on port {port} answering", lambda: bool(probe.ping()), timeout_s)
        finally:
            probe.close()

    def close(self) -> None:
        for port in list(self.procs):
            with contextlib.suppress(ProcessLookupError):  # its group already gone
                self.kill(port)
        shutil.rmtree(self.dir, ignore_errors=True)


def _node_args(port: int) -> list[str]:
    return [
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
        # a replica (re)joining syncs at once, not after the default 5 s wait for company
        "--repl-diskless-sync-delay", "0",
    ]  # fmt: skip


class _Deployment:
    _servers: _Servers

    def __enter__(self) -> Any:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Kill every server and remove the directory."""
        self._servers.close()

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port``: whatever its replica had not copied is lost."""
        self._servers.kill(port)

    def freeze(self, port: int) -> None:
        """SIGSTOP the server on ``port`` (a replica that stops reading: a lagging link)."""
        os.killpg(self._servers.procs[port].pid, signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        """SIGCONT a frozen server."""
        os.killpg(self._servers.procs[port].pid, signal.SIGCONT)

    def restart(self, port: int) -> None:
        """Start a killed server again: it comes back as a replica of whoever took over
        (a cluster node from its nodes file, a sentinel-managed one when the sentinels
        reconfigure it)."""
        self._servers.restart(port)

    def alive(self, port: int) -> bool:
        """Whether the server on ``port`` runs."""
        return self._servers.procs[port].poll() is None


class LocalCluster(_Deployment):
    """A Redis Cluster of ``masters`` shards with ``replicas`` replicas each.

    Args:
        masters: shards (at least 3, as ``redis-cli --cluster create`` requires).
        replicas: replicas per master.
        node_timeout_ms: ``cluster-node-timeout``: how long a silent master has before its
            replica takes over.
    """

    def __init__(self, *, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000):
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []
        while len(self.ports) < masters * (1 + replicas):
            if (port := cluster_port()) not in self.ports:
                self.ports.append(port)
        self._servers = _Servers("jobsim-cluster-")

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start every node at once, create the cluster and wait for ``cluster_state:ok``."""
        for port in self.ports:
            self._servers.spawn(
                port,
                [
                    *_node_args(port),
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", f"nodes-{port}.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                ],
            )  # fmt: skip
        self._servers.wait_all_up(timeout_s)
        subprocess.run(
            [
                _binary("redis-cli"), "--cluster", "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas", str(self.replicas), "--cluster-yes",
            ],
            check=True, capture_output=True, timeout=timeout_s,
        )  # fmt: skip
        _wait("cluster_state:ok on every node", self._healthy, timeout_s)

    def _healthy(self) -> bool:
        masters = 0
        for port in self.ports:
            with redis.Redis(port=port, decode_responses=True) as node:
                if node.cluster("info")["cluster_state"] != "ok":
                    return False
                info = node.info("replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
                masters += info["role"] == "master"
        return masters == self.masters

    def master_port_of(self, key: str) -> int:
        """Port of the live master that owns ``key``'s slot."""
        alive = [p for p in self.ports if self._servers.procs[p].poll() is None]
        with redis.Redis(port=alive[0], decode_responses=True) as node:
            slot = int(node.cluster("keyslot", key))
            for start, end, master, *_ in node.cluster("slots"):
                if start <= slot <= end:
                    return int(master[1])
        raise RedisServerError(f"no master owns slot {slot}")

    def master_ports(self) -> list[int]:
        """Ports of the live masters that own slots."""
        alive = [p for p in self.ports if self.alive(p)]
        with redis.Redis(port=alive[0], decode_responses=True) as node:
            return sorted({int(master[1]) for _, _, master, *_ in node.cluster("slots")})

    def replica_port(self, master_port: int) -> int:
        """Port of a replica of the master on ``master_port``."""
        return self.replica_port_of(master_port)

    def replica_port_of(self, master_port: int) -> int:
        """Port of a replica of the master on ``master_port``."""
        with redis.Redis(port=master_port, decode_responses=True) as node:
            info = node.info("replication")
        return int(info["slave0"]["port"])

    def wait_promoted(self, key: str, old_port: int, timeout_s: float = 20.0) -> int:
        """Wait until a master other than ``old_port`` owns ``key``'s slot and every live
        node reports ``cluster_state:ok``; returns the new owner's port."""

        def moved() -> bool:
            if self.master_port_of(key) == old_port:
                return False
            for port in self.ports:
                if self.alive(port):
                    with redis.Redis(port=port, decode_responses=True) as node:
                        if node.cluster("info")["cluster_state"] != "ok":
                            return False
            return True

        _wait("a replica promoted", moved, timeout_s)
        return self.master_port_of(key)

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Wait until every node is up, the cluster ok and every replica in sync."""
        _wait("every node up and in sync", self._healthy, timeout_s)


class LocalSentinel(_Deployment):
    """One master, ``replicas`` replicas and ``sentinels`` sentinels watching service
    ``service`` (quorum: a majority of the sentinels).

    Args:
        down_after_ms: ``down-after-milliseconds``: how long a silent master has before the
            sentinels fail it over.
    """

    def __init__(
        self,
        *,
        service: str = "jobsim",
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 500,
    ) -> None:
        self.service = service
        self.down_after_ms = down_after_ms
        self.data_ports = [free_port() for _ in range(1 + replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self._servers = _Servers("jobsim-sentinel-")

    @property
    def url(self) -> str:
        """``redis+sentinel://`` naming every sentinel, then the service."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start master, replicas and sentinels, and wait until the sentinels see them all."""
        master = self.data_ports[0]
        for port in self.data_ports:
            args = _node_args(port)
            if port != master:
                args += ["--replicaof", "127.0.0.1", str(master)]
            self._servers.spawn(port, args)
        quorum = len(self.sentinel_ports) // 2 + 1
        for port in self.sentinel_ports:
            conf = self._servers.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\n"
                f"sentinel monitor {self.service} 127.0.0.1 {master} {quorum}\n"
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.service} {max(4 * self.down_after_ms, 2000)}\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
            self._servers.spawn(port, [str(conf), "--sentinel", "--loglevel", "warning"])
        self._servers.wait_all_up(timeout_s)
        _wait("sentinels seeing every replica and each other", self._healthy, timeout_s)

    def _healthy(self) -> bool:
        master = self.master_port()
        for port in self._servers.procs:
            if port in self.sentinel_ports:
                with redis.Redis(port=port, decode_responses=True) as s:
                    if len(s.sentinel_slaves(self.service)) < len(self.data_ports) - 1:
                        return False
                    if len(s.sentinel_sentinels(self.service)) < len(self.sentinel_ports) - 1:
                        return False
            elif port != master:
                with redis.Redis(port=port, decode_responses=True) as node:
                    if node.info("replication").get("master_link_status") != "up":
                        return False
        return True

    def replica_port(self, master_port: int) -> int:
        """Port of a replica of the master on ``master_port``."""
        return next(p for p in self.data_ports if p != master_port and self.alive(p))

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Wait until every replica follows the master and the sentinels see them all."""
        _wait("every replica in sync", self._healthy, timeout_s)

    def master_port(self) -> int:
        """Port of the master the sentinels name now."""
        for port in self.sentinel_ports:
            if self._servers.procs[port].poll() is None:
                with redis.Redis(port=port, decode_responses=True) as s:
                    _, master = s.sentinel_get_master_addr_by_name(self.service)
                    return int(master)
        raise RedisServerError("no sentinel is running")

    def wait_promoted(self, old_port: int, timeout_s: float = 20.0) -> int:
        """Wait until the sentinels name a master other than ``old_port``; returns it."""
        _wait("a replica promoted", lambda: self.master_port() != old_port, timeout_s)
        return self.master_port()

    def restart(self, port: int) -> None:
        """Start a killed data node again as a replica of the current master (as an
        operator brings a failed node back; the sentinels would otherwise take ~10 s to
        reconfigure it)."""
        args = [*_node_args(port), "--replicaof", "127.0.0.1", str(self.master_port())]
        self._servers.args[port] = args
        self._servers.restart(port)
