"""The ``jobsim`` command line: ``demo``, ``run``, ``sweep``, ``worker``, ``serve``, ``bench``,
``stats``, and the admin commands ``submit``, ``cancel``, ``requeue``, ``purge``, ``pause``,
``resume`` (:mod:`jobsim.cli_admin`).

Run ``jobsim COMMAND --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from jobsim import __version__
from jobsim.cli_admin import add_admin_commands, add_log_args
from jobsim.cli_args import (
    add_bench_config_args,
    add_json_out_arg,
    add_listen_args,
    add_queue_args,
    add_server_limit_args,
    add_worker_args,
    at_least,
)
from jobsim.cli_commands import run_bench, run_dashboard, run_serve, run_stats, run_worker
from jobsim.cli_parser import CommandParser, DeprecatedAlias, Switch
from jobsim.errors import JobsimError


def main(argv: Sequence[str] | None = None, *, peers: Sequence[Any] = ()) -> int:
    """Entry point of the ``jobsim`` command.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        peers: peer-queue adapters for ``bench --peers`` (``benchmarks/run.py`` passes them:
            they live in the repository, not in the package).
    """
    args = parse(argv)
    args.peer_adapters = list(peers)
    try:
        return int(args.run(args))
    except (JobsimError, OSError) as exc:  # OSError: an output file or folder not writable
        print(f"jobsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


ENV_HELP = (
    "Every flag can also be set in the environment as $JOBSIM_<FLAG> (--read-timeout-s: "
    "$JOBSIM_READ_TIMEOUT_S; --redis: $JOBSIM_REDIS_URL; true/false for switches, commas "
    "between the items of a repeatable flag); the command line wins over the environment, "
    "which wins over the default. `jobsim COMMAND --help` names each flag's variable."
)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line, each flag's default read from ``$JOBSIM_<FLAG>`` first
    (:mod:`jobsim.settings`).

    Exits with status 2 (argparse's usage error) on a bad flag, and with one error line
    naming the variable on a bad environment value.
    """
    return _parser().parse_args(argv)


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="jobsim",
        description="A real Redis-backed priority job queue, and a simulator around it.",
        epilog=ENV_HELP,
    )
    parser.add_argument("--version", action="version", version=f"jobsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_sim_commands(sub)

    worker = sub.add_parser(
        "worker",
        help="run workers against a Redis server until SIGTERM or Ctrl-C",
        description="Serve one queue, or several (--queue a --queue b, workers shared by "
        "--weight), from this host. Start it on several hosts against one Redis to share the "
        "queues. SIGTERM or Ctrl-C stops gracefully: in-flight jobs get "
        "--grace-s seconds, then go back to the queue.",
    )
    add_queue_args(worker, many=True, weights=True)
    worker.add_argument(
        "--workers",
        "--concurrency",
        dest="workers",
        action=DeprecatedAlias,
        old_env=True,
        type=at_least(1),
        default=4,
        metavar="N",
        help="workers (--concurrency is a deprecated alias)",
    )
    add_worker_args(worker)
    add_log_args(worker)
    worker.set_defaults(run=run_worker)

    bench = sub.add_parser(
        "bench",
        help="measure throughput, latency, idle CPU and memory on a private redis-server",
        description="Start a throwaway redis-server on a free loopback port and measure "
        "enqueue, drain throughput (threads and processes), retries, submit-to-start latency, "
        "idle CPU, memory per job and timing-capture cost; write bench.json, bench.md and "
        "bench.png. With --peers, also RQ, arq, SAQ, Huey, Dramatiq and Celery when installed "
        "(pip install -e '.[peers]'; their adapters live in the repository: run "
        "`python -m benchmarks.run --peers` from its root).",
    )
    bench.add_argument("--quick", action=Switch, help="a smoke run of a few seconds")
    bench.add_argument(
        "--peers",
        action=Switch,
        help="also measure installed peer queues, and HTTP submit beside a bare FastAPI POST",
    )
    bench.add_argument(
        "--cluster",
        action=Switch,
        help="instead: start a 3-shard Redis Cluster and measure N queues over the shards "
        "against one shard, the Redis-side cost per job, the durability knob's cost and "
        "what a failover loses (writes cluster.json and cluster.md)",
    )
    bench.add_argument("--out", metavar="DIR", default="bench-out", help="output folder")
    add_bench_config_args(bench)
    bench.set_defaults(run=run_bench)

    stats = sub.add_parser(
        "stats",
        help="print a queue's counts per status and its workers (--queue again for more; "
        "on a cluster each is read from its own shard)",
    )
    add_queue_args(stats, many=True)
    stats.set_defaults(run=run_stats)
    add_admin_commands(sub)

    serve = sub.add_parser(
        "serve",
        help="serve the HTTP API (Swagger at /docs) with workers, until SIGTERM or Ctrl-C",
        description="Serve POST /submit, GET /status/{task_id}, listing, dead-letter operations, "
        "stats, health and Prometheus metrics, with workers started alongside. Without a URL it "
        "runs on the embedded backend. If $JOBSIM_API_KEY is set, every endpoint but /health "
        "requires it in the X-API-Key header or as Authorization: Bearer. SIGTERM or Ctrl-C "
        "stops gracefully: in-flight jobs get --grace-s seconds, then go back to the queue.",
    )
    add_queue_args(serve)
    serve.add_argument(
        "--workers",
        "--concurrency",
        dest="workers",
        action=DeprecatedAlias,
        old_env=True,
        type=at_least(0),
        default=4,
        metavar="N",
        help="workers to run (0: none, e.g. when `jobsim worker` runs them; --concurrency is a "
        "deprecated alias)",
    )
    add_worker_args(serve)
    serve.add_argument(
        "--worker-process",
        choices=["auto", "on", "off"],
        default="auto",
        help="on: run the --workers threads in one supervised child process, so they share no "
        "interpreter lock with the HTTP server (restarted if it dies); off: threads in the "
        "server's process; auto: on with a Redis URL, off on the embedded backend (its data "
        "lives in this process) and with --processes",
    )
    add_listen_args(serve, log_level="info")
    add_server_limit_args(serve)
    serve.set_defaults(run=run_serve)

    dashboard = sub.add_parser(
        "dashboard",
        help="serve the live dashboard (at /) of a queue that `jobsim worker` runs",
        description="Serve the dashboard at / (and the whole HTTP API) for a queue whose "
        "workers run elsewhere: counts, throughput and wait charts, workers, running jobs, "
        "dead letters (inspect, requeue, purge), a job's attempts, and teaching scenarios, "
        "whose jobs go to the queue for its workers. Starts no workers. With $JOBSIM_API_KEY "
        "set, the page asks for the key (or open /?key=...). Give it the same queue settings "
        "as the workers.",
    )
    add_queue_args(dashboard)
    add_worker_args(dashboard)
    add_listen_args(dashboard, log_level="warning")  # no access log: the page polls nothing
    add_server_limit_args(dashboard)
    dashboard.set_defaults(run=run_dashboard, workers=0)
    return parser


def _add_sim_commands(sub: Any) -> None:
    try:
        from jobsim.sim import commands
    except ImportError as exc:
        missing = str(exc)

        def unavailable(args: argparse.Namespace) -> int:
            raise JobsimError(missing)

        for name in ("demo", "run", "sweep"):
            sub.add_parser(name, help="(needs pip install 'jobsim[sim]')").set_defaults(
                run=unavailable
            )
        return
    demo = sub.add_parser(
        "demo",
        help="the main job: a default scenario on the embedded backend, explained (~30 s)",
        description="Poisson arrivals at three priorities, 15%% of attempts failing with "
        "retries, a poison job, a job that crashes its worker and a worker killed mid-run, on "
        "the real queue (embedded backend, no server needed). Prints measured beside theory "
        "and the checker's verdict; writes charts (PNG) and data (CSV, JSON) to --out.",
    )
    demo.add_argument("--jobs", type=int, default=600, help="jobs to submit")
    demo.add_argument("--workers", type=int, default=4, help="worker threads")
    demo.add_argument("--seed", type=int, default=7, help="seed of every draw")
    demo.add_argument("--time-scale", type=float, default=0.2, help="wall seconds per model second")
    demo.add_argument("--out", metavar="DIR", default="jobsim-demo", help="output folder")
    demo.add_argument(
        "--redis", metavar="URL", default=None, help="a real server instead (none: embedded)"
    )
    demo.set_defaults(run=commands.demo_command)

    run = sub.add_parser(
        "run",
        help="run one workload with a fault plan; print measured vs theory; write JSON",
        description="Submit a seeded workload to the real queue, inject the faults, drain, "
        "and report measured beside theory with the checker's verdict (exit 1 if invalid).",
    )
    commands.add_run_arguments(run)
    add_json_out_arg(run, "write the summary here")
    run.add_argument("--out", metavar="DIR", default=None, help="also write CSV and charts here")
    run.set_defaults(run=commands.run_command)

    sweep = sub.add_parser(
        "sweep",
        help="run a grid of workloads and write one tidy CSV row per run",
        description="Every combination of the --grid values, e.g. --grid workers=1,2,4 --grid "
        "fail_probability=0,0.2; other flags set the rest of the workload (exit 1 if any run "
        "is invalid).",
    )
    commands.add_run_arguments(sweep)
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a Workload or Setup field (or rate_per_s) and its values; repeatable "
        "(in the environment, separated by ';')",
    )
    sweep.add_argument("--csv", metavar="FILE", default=None, help="write the table here")
    sweep.set_defaults(run=commands.sweep_command)


if __name__ == "__main__":
    raise SystemExit(main())
