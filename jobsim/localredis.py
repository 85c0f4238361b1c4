"""A throwaway ``redis-server`` on a free loopback port, for tests, notebooks and benchmarks.

Example:
    >>> with LocalRedis(persistence="always") as server:   # doctest: +SKIP
    ...     client = jobsim.connect(server.url)
    ...     server.restart()                                 # data survives: AOF fsync always
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobsim.errors import JobsimError

Persistence = Literal["none", "everysec", "always"]


class RedisServerError(JobsimError):
    """``redis-server`` is missing or would not start."""


def redis_server_binary() -> str | None:
    """Path of ``redis-server`` on PATH, or None."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRedis:
    """Start, kill and restart a private ``redis-server``.

    Args:
        persistence: ``none`` (nothing survives a restart), ``everysec`` (AOF, fsync every
            second) or ``always`` (AOF, fsync on every write).
        port: a fixed port; default a free one (kept across restarts).
        password: require this password (``requirepass``); the URL carries it.
    """

    def __init__(
        self,
        *,
        persistence: Persistence = "none",
        port: int | None = None,
        password: str | None = None,
    ) -> None:
        if persistence not in ("none", "everysec", "always"):
            raise ValueError(f"persistence must be none, everysec or always, not {persistence!r}")
        self.persistence = persistence
        self.port = port or free_port()
        self.password = password
        self._dir = Path(tempfile.mkdtemp(prefix="jobsim-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:<port>/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def __enter__(self) -> LocalRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        binary = redis_server_binary()
        if binary is None:
            raise RedisServerError("redis-server is not installed (apt-get install redis-server)")
        aof = self.persistence != "none"
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self._dir),
            "--save",
            "",
            "--appendonly",
            "yes" if aof else "no",
            "--appendfsync",
            self.persistence if aof else "everysec",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
            "--logfile",
            str(self._dir / "redis.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        # Both timeouts: a foreign program listening on the port may accept and never answer.
        probe = redis.Redis(
            port=self.port,
            password=self.password,
            socket_connect_timeout=0.2,
            socket_timeout=0.2,
            retry=Retry(NoBackoff(), 0),  # this loop is the retry; redis-py's would sleep seconds
        )
        try:
            while True:
                if self._proc.poll() is not None:
                    raise RedisServerError(
                        f"redis-server exited at start: see {self._dir}/redis.log"
                    )
                try:
                    if probe.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RedisServerError(f"redis-server did not answer within {timeout_s} s")
                time.sleep(0.02)
        finally:
            probe.close()

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM: AOF is flushed)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        self._proc = None

    def kill(self) -> None:
        """Kill the server with SIGKILL: whatever was not yet fsynced is lost."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None

    def restart(self, *, hard: bool = True) -> None:
        """Kill (``hard``) or stop the server, then start it again on the same port."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """Whether the server process is up."""
        return self._proc is not None and self._proc.poll() is None
