"""HTTP submit rate: ``python -m benchmarks.http_submit [--requests N] [--threads T] [--out FILE]``.

Starts a private ``redis-server`` and ``jobsim serve --workers 0`` on free loopback ports, then
POSTs ``/submit`` (task ``noop``) N times from one keep-alive httpx client, and N times again
split over T threads with a client each, and prints submits per second and latency
percentiles, beside ``JobQueue.submit`` called directly (no HTTP) for scale. Workers are off,
so the number is the submit path alone: HTTP, validation, one Lua script. Every request is
checked to be answered 200, and the queue's ``submitted`` total to match.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from jobsim import JobQueue, connect
from jobsim.localredis import LocalRedis, free_port

BODY = {"task": "noop", "payload": {"order": 1}}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table; with ``--out``, also write the results as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_submit", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="submits per variant (3000)")
    parser.add_argument("--threads", type=int, default=4, help="clients of the threaded run (4)")
    parser.add_argument("--quick", action="store_true", help="300 submits per variant")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    n = 300 if args.quick else args.requests
    with LocalRedis() as server:
        rows = _run(server.url, n, args.threads)
    print(_table(rows))
    if args.out is not None:
        meta = {"python": platform.python_version(), "cpus": os.cpu_count(), "requests": n}
        args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def _run(redis_url: str, n: int, threads: int) -> list[dict[str, Any]]:
    name = f"bench{uuid.uuid4().hex[:6]}"
    queue = JobQueue(connect(redis_url), name)
    port = free_port()
    command = [sys.executable, "-m", "jobsim", "serve", "--redis", redis_url, "--queue", name]
    command += ["--port", str(port), "--workers", "0", "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if k != "JOBSIM_API_KEY"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        with httpx.Client(base_url=url) as warm:
            for _ in range(50):
                _post(warm)
        rows = [
            _measure("HTTP, 1 client", 1, n, lambda: httpx.Client(base_url=url)),
            _measure(f"HTTP, {threads} clients", threads, n, lambda: httpx.Client(base_url=url)),
            _direct(queue, n),
        ]
        submitted = queue.stats().totals["submitted"]
        assert submitted == 50 + 3 * n, f"queue counted {submitted} submits"
        return rows
    finally:
        proc.terminate()
        proc.wait(30)
        queue.delete()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jobsim serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("jobsim serve did not become healthy in 30 s")
        time.sleep(0.05)


def _post(client: httpx.Client) -> float:
    start = time.perf_counter()
    response = client.post("/submit", json=BODY)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"submit answered {response.status_code}: {response.text}")
    return elapsed


def _measure(
    variant: str, clients: int, n: int, make: Callable[[], httpx.Client]
) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client_loop(count: int) -> None:
        with make() as client:
            barrier.wait()
            mine = [_post(client) for _ in range(count)]
        with lock:
            latencies.extend(mine)

    shares = [n // clients + (i < n % clients) for i in range(clients)]
    workers = [threading.Thread(target=client_loop, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    return _row(variant, clients, latencies, elapsed)


def _direct(queue: JobQueue, n: int) -> dict[str, Any]:
    latencies = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        queue.submit(BODY["task"], BODY["payload"])
        latencies.append(time.perf_counter() - t0)
    return _row("JobQueue.submit, no HTTP", 1, latencies, time.perf_counter() - start)


def _row(variant: str, clients: int, latencies: list[float], elapsed: float) -> dict[str, Any]:
    ms = sorted(x * 1e3 for x in latencies)
    return {
        "variant": variant,
        "clients": clients,
        "requests": len(ms),
        "submits_per_s": round(len(ms) / elapsed, 1),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant | requests | submits/s | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['requests']} | {r['submits_per_s']:,.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
