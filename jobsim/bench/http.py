"""HTTP submit rate of ``jobsim serve`` beside a bare FastAPI POST endpoint on the same uvicorn
settings, so the ratio is what jobsim's service adds (validation, the guard, one Lua script).

Both servers run as child processes on free loopback ports (``jobsim serve --workers 0``, so
the number is the submit path alone, and ``python -m jobsim.bench.http --bare``), and both
are driven the same way: one keep-alive client posting ``{"task": "noop", "payload": ...}``
with the standard library's ``http.client`` (a thin client, so the servers dominate).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from jobsim.localredis import free_port

BLOCK = 50
"""Requests sent to one server before switching to the other."""


def http_submit_rates(redis_url: str, requests: int, *, payload_bytes: int = 0) -> dict[str, Any]:
    """Submits/s over HTTP to ``jobsim serve`` and to a bare FastAPI endpoint, and their ratio.

    Args:
        redis_url: the server ``jobsim serve`` uses (a scratch queue on it is deleted after).
        requests: POSTs per server, after 100 untimed warm-up requests.
        payload_bytes: size of the string payload of each job.

    Raises:
        RuntimeError: a server that does not start, or a request not answered 200.
    """
    body = json.dumps({"task": "noop", "payload": {"pad": "x" * payload_bytes}}).encode()
    queue = f"bench-http-{uuid.uuid4().hex[:8]}"
    serve = ["-m", "jobsim", "serve", "--redis", redis_url, "--queue", queue, "--workers", "0"]
    with (
        _server([*serve, "--log-level", "warning"]) as ours,
        _server(["-m", "jobsim.bench.http", "--bare"]) as bare,
    ):
        # alternate blocks of requests, so a change in the shared machine's load hits both
        clients = [
            http.client.HTTPConnection("127.0.0.1", port, timeout=30) for port in (ours, bare)
        ]
        try:
            for client in clients:
                _post(client, body, 100)  # warm-up
            elapsed = [0.0, 0.0]
            for start in range(0, requests, BLOCK):
                for i, client in enumerate(clients):
                    elapsed[i] += _post(client, body, min(BLOCK, requests - start))
        finally:
            for client in clients:
                client.close()
    from jobsim.connection import connect
    from jobsim.queue import JobQueue

    JobQueue(connect(redis_url), queue).delete()
    jobsim, reference = requests / elapsed[0], requests / elapsed[1]
    return {"jobsim_per_s": jobsim, "bare_fastapi_per_s": reference, "ratio": jobsim / reference}


@contextmanager
def _server(args: list[str]) -> Iterator[int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "JOBSIM_API_KEY"}
    proc = subprocess.Popen(
        [sys.executable, *args, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                raise RuntimeError(f"{' '.join(args[:3])} did not start:\n{err}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/health")
        conn.getresponse().read()
        conn.close()
    except OSError:
        return False
    return True


def _post(conn: http.client.HTTPConnection, body: bytes, n: int) -> float:
    """Seconds taken by ``n`` POSTs of ``body`` to ``/submit``, each checked to answer 200."""
    headers = {"Content-Type": "application/json"}
    started = time.perf_counter()
    for _ in range(n):
        conn.request("POST", "/submit", body, headers)
        response = conn.getresponse()
        text = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST /submit answered {response.status}: {text[:200]!r}")
    return time.perf_counter() - started


class BareBody(BaseModel):
    """The bare endpoint's request body."""

    task: str
    payload: Any = None


class BareAnswer(BaseModel):
    """The bare endpoint's answer."""

    task_id: str


def bare_app() -> Any:
    """The reference: a FastAPI POST endpoint that validates the same body shape with pydantic
    and answers an id, touching nothing else."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/submit")
    def submit(body: BareBody) -> BareAnswer:
        return BareAnswer(task_id=uuid.uuid4().hex)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _serve_bare(argv: list[str] | None = None) -> int:
    """``python -m jobsim.bench.http --bare --port P``: serve :func:`bare_app` under the same
    uvicorn settings as ``jobsim serve``."""
    import uvicorn

    from jobsim.api.server import ServerLimits, uvicorn_config

    parser = argparse.ArgumentParser(prog="python -m jobsim.bench.http")
    parser.add_argument("--bare", action="store_true", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    config = uvicorn_config(
        bare_app(), ServerLimits(), host="127.0.0.1", port=args.port, log_level="warning"
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve_bare())


def http_available() -> bool:
    """Whether the ``api`` extra (FastAPI, uvicorn) is installed, so the HTTP figure can run."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("fastapi", "uvicorn"))
