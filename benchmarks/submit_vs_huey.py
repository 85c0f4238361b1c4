"""Single ``JobQueue.submit`` beside Huey's enqueue: ``python -m benchmarks.submit_vs_huey
[--jobs N] [--rounds R] [--repeat K] [--out FILE]``.

Starts a private ``redis-server``; each repeat calls ``queue.submit("noop")`` and Huey's
``noop()`` task N times each, in R alternating blocks (so a change in the shared machine's
load hits both), timing wall clock and this process's CPU time per call (Python, the client
library and hiredis: what a producer pays beside the round trip). ``INFO commandstats`` gives
the server's time per call of each one's command (``EVALSHA`` of SUBMIT, Huey's ``LPUSH``).
Needs Huey (``pip install -e '.[peers]'``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobsim import JobQueue, connect
from jobsim.localredis import LocalRedis


def main(argv: list[str] | None = None) -> int:
    """Run the repeats and print a table; with ``--out``, also write them as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.submit_vs_huey", description=__doc__
    )
    parser.add_argument("--jobs", type=int, default=5000, help="calls of each per repeat (5000)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating blocks (10)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats (3)")
    parser.add_argument("--out", type=Path, default=None, help="write the runs as JSON here")
    args = parser.parse_args(argv)
    from benchmarks.peers import _huey_tasks as tasks

    runs = []
    with LocalRedis() as server:
        client = connect(server.url)
        tasks.connect(server.url)
        for i in range(args.repeat):
            queue = JobQueue(client, f"vs-huey-{uuid.uuid4().hex[:6]}")
            runs.append(_run(client, queue, tasks.noop, args.jobs, args.rounds))
            queue.delete()
            client.flushall()
            r = runs[-1]
            print(
                f"repeat {i + 1}: jobsim {r['jobsim_per_s']:,.0f}/s, Huey {r['huey_per_s']:,.0f}/s"
            )
    print(_table(runs))
    if args.out is not None:
        args.out.write_text(json.dumps(runs, indent=2) + "\n")
    return 0


def _run(
    client: Any, queue: JobQueue, huey_noop: Callable[[], Any], n: int, rounds: int
) -> dict[str, float]:
    for _ in range(200):  # warm-up: scripts loaded, connections open
        queue.submit("noop")
        huey_noop()
    client.config_resetstat()
    block = max(n // rounds, 1)
    wall = {"jobsim": 0.0, "huey": 0.0}
    cpu = {"jobsim": 0.0, "huey": 0.0}
    calls: dict[str, Callable[[], Any]] = {
        "jobsim": lambda: queue.submit("noop"),
        "huey": huey_noop,
    }
    for _ in range(rounds):
        for name, call in calls.items():
            w, c = time.perf_counter(), time.process_time()
            for _ in range(block):
                call()
            wall[name] += time.perf_counter() - w
            cpu[name] += time.process_time() - c
    stats: Any = client.info("commandstats")
    total = block * rounds
    return {
        "jobsim_per_s": total / wall["jobsim"],
        "huey_per_s": total / wall["huey"],
        "ratio": wall["huey"] / wall["jobsim"],
        "jobsim_client_cpu_us": 1e6 * cpu["jobsim"] / total,
        "huey_client_cpu_us": 1e6 * cpu["huey"] / total,
        "submit_script_server_us": stats.get("cmdstat_evalsha", {}).get("usec_per_call", 0.0),
        "huey_lpush_server_us": stats.get("cmdstat_lpush", {}).get("usec_per_call", 0.0),
    }


def _span(runs: list[dict[str, float]], key: str, fmt: str) -> str:
    values = [r[key] for r in runs]
    return (
        f"{format(statistics.median(values), fmt)} "
        f"({format(min(values), fmt)}..{format(max(values), fmt)})"
    )


def _table(runs: list[dict[str, float]]) -> str:
    rows = [
        ("jobsim submit /s", "jobsim_per_s", ",.0f"),
        ("Huey enqueue /s", "huey_per_s", ",.0f"),
        ("jobsim / Huey", "ratio", ".2f"),
        ("client CPU per jobsim submit, us", "jobsim_client_cpu_us", ".1f"),
        ("client CPU per Huey enqueue, us", "huey_client_cpu_us", ".1f"),
        ("server time per SUBMIT (EVALSHA), us", "submit_script_server_us", ".2f"),
        ("server time per Huey LPUSH, us", "huey_lpush_server_us", ".2f"),
    ]
    lines = ["| figure | median (min..max) |", "|---|---:|"]
    lines += [f"| {label} | {_span(runs, key, fmt)} |" for label, key, fmt in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
