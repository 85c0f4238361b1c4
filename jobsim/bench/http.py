"""HTTP submit rate of ``jobsim serve`` beside a bare FastAPI POST endpoint on the same uvicorn
settings, so the ratio is what jobsim's service adds (validation, the guard, one Lua script).

The servers run as child processes on free loopback ports: ``jobsim serve`` in each
:data:`VARIANTS` asked for (no workers; 4 worker threads in the server's process; 4 worker
threads in a worker process of their own, the default on a real Redis), and
``python -m jobsim.bench.http --bare``. Each is driven the same way: one keep-alive client
posting ``{"task": "noop", "payload": ...}`` with the standard library's ``http.client`` (a
thin client, so the servers dominate), in blocks of :data:`BLOCK` requests that go round the
servers, so a change in the shared machine's load hits every one. With workers, the jobs
are run while the next ones are submitted: the ratio then includes what running them costs
the server (the interpreter lock, when they share its process).
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
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from jobsim.localredis import free_port

BLOCK = 50
"""Requests sent to one server before going on to the next."""
VARIANTS: dict[str, list[str]] = {
    "no_workers": ["--workers", "0"],
    "threads_in_server": ["--workers", "4", "--worker-process", "off"],
    "worker_process": ["--workers", "4", "--worker-process", "on"],
}
"""The ``jobsim serve`` flags of each variant measured."""


def http_submit_rates(
    redis_url: str,
    requests: int,
    *,
    payload_bytes: int = 0,
    variants: Sequence[str] = ("worker_process",),
) -> dict[str, Any]:
    """Submits/s over HTTP to ``jobsim serve`` (each variant) and to a bare FastAPI endpoint.

    Args:
        redis_url: the server ``jobsim serve`` uses (a scratch queue per variant, deleted
            after).
        requests: POSTs per server, after 100 untimed warm-up requests.
        payload_bytes: size of the string payload of each job.
        variants: names in :data:`VARIANTS`; the first is the headline ``ratio``.

    Returns:
        ``bare_fastapi_per_s``, and per variant ``<name>_per_s`` and ``<name>_ratio`` (its
        rate over the bare one); ``jobsim_per_s`` and ``ratio`` repeat the first variant's,
        and ``<name>_cpu_ms`` is the CPU time per request of that server and its children.

    Raises:
        RuntimeError: a server that does not start, or a request not answered 200.
    """
    body = json.dumps({"task": "noop", "payload": {"pad": "x" * payload_bytes}}).encode()
    queues = {name: f"bench-http-{uuid.uuid4().hex[:8]}" for name in variants}
    with ExitStack() as stack:
        servers: dict[str, tuple[int, int]] = {}
        for name in variants:
            serve = ["-m", "jobsim", "serve", "--redis", redis_url, "--queue", queues[name]]
            args = [*serve, *VARIANTS[name], "--log-level", "warning"]
            servers[name] = stack.enter_context(server_process(args))
        servers["bare_fastapi"] = stack.enter_context(
            server_process(["-m", "jobsim.bench.http", "--bare"])
        )
        clients = {
            name: http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for name, (port, _) in servers.items()
        }
        try:
            for client in clients.values():
                _post(client, body, 100)  # warm-up
            elapsed = dict.fromkeys(clients, 0.0)
            cpu = {name: _tree_cpu_s(pid) for name, (_, pid) in servers.items()}
            for start in range(0, requests, BLOCK):
                for name, client in clients.items():
                    elapsed[name] += _post(client, body, min(BLOCK, requests - start))
            cpu = {name: _tree_cpu_s(pid) - cpu[name] for name, (_, pid) in servers.items()}
        finally:
            for client in clients.values():
                client.close()
    from jobsim.connection import connect
    from jobsim.queue import JobQueue

    redis_client = connect(redis_url)
    for queue in queues.values():
        JobQueue(redis_client, queue).delete()
    reference = requests / elapsed["bare_fastapi"]
    out: dict[str, Any] = {"bare_fastapi_per_s": reference}
    for name in [*variants, "bare_fastapi"]:
        rate = requests / elapsed[name]
        out[f"{name}_per_s"] = rate
        out[f"{name}_cpu_ms"] = 1e3 * cpu[name] / requests
        if name != "bare_fastapi":
            out[f"{name}_ratio"] = rate / reference
    out["jobsim_per_s"], out["ratio"] = out[f"{variants[0]}_per_s"], out[f"{variants[0]}_ratio"]
    return out


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and of the children any of its threads started,
    from /proc (0 where there is no /proc)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@contextmanager
def server_process(args: list[str]) -> Iterator[tuple[int, int]]:
    """A server started with ``args`` on a free port: yields its port and pid."""
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
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(port: int) -> bool:
    """Whether ``/health`` answers 200: the server is up and, with workers, every one of them
    heartbeats (a worker process starts after the server answers)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        conn.close()
    except OSError:
        return False
    return response.status == 200


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
