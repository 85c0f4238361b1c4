"""HTTP submit while the workers compute: ``python -m benchmarks.http_busy_workers
[--repeat R] [--requests N]``.

Starts a private ``redis-server``; each repeat runs ``jobsim serve --workers 4`` with
``--worker-process off`` (threads in the server's process) and then ``on`` (a worker
process), submits 240 jobs of 50 ms of pure-Python computation (``benchmarks.spin_tasks``:
about 3 s of work for the 4 workers), then times N no-op submits over one keep-alive
connection while those run, and prints submits/s and latency percentiles. The two variants
run one after the other (not interleaved: busy workers of one would load the other), so
compare them within a repeat.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import time
from pathlib import Path

from jobsim import JobQueue, connect
from jobsim.bench.http import server_process
from jobsim.localredis import LocalRedis

ROOT = Path(__file__).resolve().parent.parent
SPIN = json.dumps({"task": "spin", "payload": {"ms": 50}}).encode()
NOOP = json.dumps({"task": "noop"}).encode()
HEADERS = {"Content-Type": "application/json"}


def main(argv: list[str] | None = None) -> int:
    """Run the repeats and print one line per variant."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_busy_workers")
    parser.add_argument("--repeat", type=int, default=3, help="repeats (3)")
    parser.add_argument("--requests", type=int, default=300, help="timed submits (300)")
    args = parser.parse_args(argv)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    with LocalRedis() as server:
        client = connect(server.url)
        for rep in range(args.repeat):
            for mode in ("off", "on"):
                name = f"busy-{mode}-{rep}"
                flags = ["--workers", "4", "--worker-process", mode]
                serve = ["-m", "jobsim", "serve", "--redis", server.url, "--queue", name, *flags]
                serve += ["--import", "benchmarks.spin_tasks", "--log-level", "warning"]
                with server_process(serve) as (port, _):
                    line = _busy(port, args.requests)
                print(f"repeat {rep + 1}, --worker-process {mode}: {line}")
                JobQueue(client, name).delete()
    return 0


def _busy(port: int, n: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for body in [NOOP] * 50 + [SPIN] * 240:  # warm-up, then the work
        conn.request("POST", "/submit", body, HEADERS)
        conn.getresponse().read()
    latencies = []
    started = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/submit", NOOP, HEADERS)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"POST /submit answered {response.status}")
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    conn.close()
    ms = sorted(1e3 * x for x in latencies)
    return (
        f"{n / elapsed:,.0f} submits/s while the workers compute, p50 {ms[len(ms) // 2]:.2f} ms, "
        f"p99 {ms[int(0.99 * (len(ms) - 1))]:.2f} ms"
    )


if __name__ == "__main__":
    raise SystemExit(main())
