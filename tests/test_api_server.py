"""The server settings of `jobsim serve` against slow or greedy clients, on a real
`jobsim serve` process and real sockets: a connection that sends nothing, or a request's
headers a byte at a time, is closed after the read timeout; the connection limit holds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from jobsim.localredis import free_port

pytestmark = pytest.mark.slow


def _serve(*flags: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "jobsim", "serve", "--port", str(port), "--workers", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSIM_")}
    proc = subprocess.Popen(
        [*command, "--log-level", "warning", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            assert proc.poll() is None, proc.communicate()[0].decode()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "jobsim serve did not come up"
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def slow_timeout_server() -> Iterator[str]:
    yield from _serve("--read-timeout-s", "1", "--keep-alive-s", "1")


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_loris_connections_are_closed_after_the_read_timeout(slow_timeout_server) -> None:
    """30 connections that send nothing and 10 that send half a request's headers are all
    closed by the server within a few seconds, and the service still answers."""
    host, port = slow_timeout_server.removeprefix("http://").split(":")
    silent = [socket.create_connection((host, int(port))) for _ in range(30)]
    partial = [socket.create_connection((host, int(port))) for _ in range(10)]
    for sock in partial:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    try:
        for sock in partial[:5]:  # dribbling more header bytes does not extend the deadline
            sock.sendall(b"X-A: 1\r\n")
        assert all(_closed_by_server(s, within_s=6) for s in silent + partial)
        assert time.monotonic() - started < 8
        assert httpx.get(f"{slow_timeout_server}/health", timeout=5).status_code == 200
    finally:
        for sock in silent + partial:
            sock.close()


def test_an_idle_keep_alive_connection_is_closed_after_keep_alive_s(slow_timeout_server) -> None:
    """After a response, a connection that stays silent is closed after `--keep-alive-s`."""
    host, port = slow_timeout_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        started, received = time.monotonic(), b""
        while chunk := sock.recv(65536):  # the response, then the server's close
            received += chunk
        assert received.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in received
        assert time.monotonic() - started < 4


def test_a_request_over_the_connection_limit_is_refused_with_503() -> None:
    """With `--limit-concurrency 4`, a request arriving while four connections are open is
    answered 503 at once instead of piling up."""
    for url in _serve("--limit-concurrency", "4"):
        host, port = url.removeprefix("http://").split(":")
        held = [socket.create_connection((host, int(port))) for _ in range(4)]
        try:
            time.sleep(0.2)
            assert httpx.get(f"{url}/health", timeout=5).status_code == 503
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200


def test_serve_help_names_the_timeouts_and_their_defaults() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jobsim", "serve", "--help"], capture_output=True, text=True
    ).stdout
    for flag in ("--read-timeout-s", "--keep-alive-s", "--limit-concurrency", "--max-header-bytes"):
        assert flag in out


def test_the_cli_defaults_are_the_server_limits_defaults() -> None:
    """`jobsim serve --help` shows the same defaults `ServerLimits` applies."""
    from dataclasses import asdict

    from jobsim.api.server import ServerLimits
    from jobsim.cli_args import ServerDefaults

    assert {k: getattr(ServerDefaults, k) for k in asdict(ServerLimits())} == asdict(ServerLimits())
