"""The ``jobsim`` command line: ``demo``, ``worker``, ``stats``.

Run ``jobsim COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence

from jobsim.connection import connect, mask_url
from jobsim.errors import JobsimError
from jobsim.queue import JobQueue, Lease, QueueConfig, Retention
from jobsim.retry import KINDS, RetryPolicy


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jobsim`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except JobsimError as exc:
        print(f"jobsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobsim",
        description="A real Redis-backed priority job queue, and a simulator around it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="submit a mixed workload to the embedded backend and show what happened",
        description="Submit flaky, failing and prioritised jobs, run a worker pool, and print "
        "counts, retries and dead letters beside the retry formulas. Needs no server.",
    )
    demo.add_argument("--jobs", type=int, default=400, help="jobs to submit (default 400)")
    demo.add_argument("--workers", type=int, default=4, help="worker threads (default 4)")
    demo.add_argument(
        "--fail-probability",
        type=float,
        default=0.3,
        help="per-attempt failure probability of the flaky jobs (default 0.3)",
    )
    demo.add_argument("--max-retries", type=int, default=3, help="retries per job (default 3)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the flaky draws (default 7)")
    demo.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="run on a real server instead of the embedded backend",
    )
    demo.set_defaults(run=_run_demo)

    worker = sub.add_parser(
        "worker",
        help="run workers against a Redis server until SIGTERM or Ctrl-C",
        description="Serve one queue from this host. Start it on several hosts against one "
        "Redis to share the queue. SIGTERM or Ctrl-C stops gracefully: in-flight jobs get "
        "--grace-s seconds, then go back to the queue.",
    )
    _add_queue_args(worker)
    worker.add_argument("--concurrency", type=int, default=4, help="workers (default 4)")
    worker.add_argument(
        "--processes", action="store_true", help="one process per worker instead of threads"
    )
    worker.add_argument("--lease-s", type=float, default=30.0, help="lease length (default 30)")
    worker.add_argument("--job-timeout-s", type=float, default=None, help="per-job timeout")
    worker.add_argument(
        "--grace-s", type=float, default=5.0, help="time in-flight jobs get on shutdown (default 5)"
    )
    worker.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE to register its @task functions",
    )
    config = worker.add_argument_group(
        "queue settings", "use the same values as the producers of this queue"
    )
    config.add_argument(
        "--aging-s",
        type=float,
        default=None,
        help="seconds of waiting worth one priority level (default: strict)",
    )
    config.add_argument(
        "--retry", choices=KINDS, default="exponential", help="backoff kind (default exponential)"
    )
    config.add_argument("--retry-base-s", type=float, default=0.05, help="first backoff (0.05)")
    config.add_argument("--retry-cap-s", type=float, default=30.0, help="largest backoff (30)")
    config.add_argument(
        "--keep-completed",
        type=int,
        default=None,
        metavar="N",
        help="keep only the newest N completed job records",
    )
    worker.set_defaults(run=_run_worker)

    bench = sub.add_parser(
        "bench",
        help="measure throughput, latency, idle CPU and memory on a private redis-server",
        description="Start a throwaway redis-server on a free loopback port and measure "
        "enqueue, drain throughput (threads and processes), retries, submit-to-start latency, "
        "idle CPU, memory per job and timing-capture cost; write bench.json, bench.md and "
        "bench.png. With --peers, also RQ, arq, SAQ, Huey, Dramatiq and Celery when installed "
        "(pip install -e '.[peers]'; run from the repository root).",
    )
    bench.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    bench.add_argument("--peers", action="store_true", help="also measure installed peer queues")
    bench.add_argument("--out", default="bench-out", help="output folder (default bench-out)")
    bench.set_defaults(run=_run_bench)

    stats = sub.add_parser("stats", help="print a queue's counts per status and its workers")
    _add_queue_args(stats)
    stats.set_defaults(run=_run_stats)
    return parser


def _add_queue_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="redis:// or rediss:// URL (default: $JOBSIM_REDIS_URL)",
    )
    parser.add_argument("--queue", default="default", help="queue name (default 'default')")


def _run_worker(args: argparse.Namespace) -> int:
    from jobsim.pool import Mode, WorkerPool

    for module in args.imports:
        importlib.import_module(module)
    client = connect(args.redis)
    config = QueueConfig(
        lease=Lease(duration_s=args.lease_s),
        aging_s=args.aging_s,
        retry=RetryPolicy(kind=args.retry, base_s=args.retry_base_s, cap_s=args.retry_cap_s),
        retention=Retention(max_completed=args.keep_completed),
    )
    queue = JobQueue(client, args.queue, config)
    mode: Mode = "process" if args.processes else "thread"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pool = WorkerPool(
        queue, args.concurrency, mode, job_timeout_s=args.job_timeout_s, grace_s=args.grace_s
    )
    pool.start()
    where = mask_url(args.redis) if args.redis else "$JOBSIM_REDIS_URL or embedded"
    print(
        f"jobsim worker {pool.id}: {args.concurrency} {mode} workers on queue "
        f"{args.queue!r} at {where}",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    print("stopping: waiting for in-flight jobs ...", flush=True)
    pool.stop()
    return 0


def _run_stats(args: argparse.Namespace) -> int:
    queue = JobQueue(connect(args.redis), args.queue)
    stats = queue.stats()
    for status, count in stats.by_status().items():
        print(f"{status:>10}  {count}")
    print("totals      " + ", ".join(f"{k}={v}" for k, v in sorted(stats.totals.items())))
    for w in queue.workers():
        state = "alive" if w.alive else "silent"
        print(f"worker {w.id} ({w.mode}, {state}) running {w.running or 'nothing'}")
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from jobsim.bench import BenchPlan, markdown, run_bench, write_report

    plan = BenchPlan.quick() if args.quick else BenchPlan()
    plan = replace(plan, peers=args.peers)
    results = run_bench(plan, progress=lambda step: print(f"... {step}", flush=True))
    paths = write_report(results, Path(args.out))
    print(markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from jobsim.demo import run_demo

    return run_demo(args)


if __name__ == "__main__":
    raise SystemExit(main())
