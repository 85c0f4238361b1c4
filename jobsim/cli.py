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
    DeprecatedAlias,
    add_bench_config_args,
    add_queue_args,
    add_worker_args,
    at_least,
    positive,
)
from jobsim.cli_commands import run_bench, run_dashboard, run_serve, run_stats, run_worker
from jobsim.errors import JobsimError


class ServerDefaults:
    """The defaults of ``serve``'s connection limits (mirrors
    :class:`jobsim.api.server.ServerLimits`, which needs the ``api`` extra to import)."""

    read_timeout_s = 10.0
    keep_alive_s = 5.0
    limit_concurrency = 1000
    max_header_bytes = 16 * 1024


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
    except JobsimError as exc:
        print(f"jobsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


ENV_PREFIX = "JOBSIM_"
"""``serve`` and ``worker`` read each flag's default from ``$JOBSIM_<FLAG>``
(``--read-timeout-s``: ``$JOBSIM_READ_TIMEOUT_S``; ``--workers`` or ``--concurrency``:
``$JOBSIM_WORKERS`` or ``$JOBSIM_CONCURRENCY``); ``--redis`` keeps ``$JOBSIM_REDIS_URL``."""
ENV_COMMANDS = ("serve", "worker")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


_ENV_HELP = (
    "Every flag can also be set in the environment as $JOBSIM_<FLAG> (e.g. --read-timeout-s: "
    "$JOBSIM_READ_TIMEOUT_S; true/false for switches, commas for --import); a flag given on "
    "the command line wins."
)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line, with ``serve`` and ``worker`` defaults from ``$JOBSIM_*``.

    Exits with status 2 (argparse's usage error) on a bad flag or environment value.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    command = parser._subparsers._group_actions[0].choices.get(args.command)  # type: ignore[union-attr]
    if args.command not in ENV_COMMANDS or command is None:
        return args
    defaults = _env_defaults(command)
    if not defaults:
        return args
    command.set_defaults(**defaults)
    return parser.parse_args(argv)


def _env_defaults(parser: argparse.ArgumentParser) -> dict[str, Any]:
    import os

    defaults: dict[str, Any] = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "redis"):
            continue
        names = [
            ENV_PREFIX + f.lstrip("-").replace("-", "_").upper() for f in action.option_strings
        ]
        name = next((n for n in names if n in os.environ), None)
        if name is None:
            continue
        raw = os.environ[name]
        try:
            defaults[action.dest] = _env_value(action, raw)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            parser.error(f"${name}={raw!r}: {exc}")
    return defaults


def _env_value(action: argparse.Action, raw: str) -> Any:
    if isinstance(action, argparse._StoreTrueAction):
        if raw.strip().lower() not in _TRUE | _FALSE:
            raise ValueError("expected true or false")
        return raw.strip().lower() in _TRUE
    convert = action.type if callable(action.type) else str
    if isinstance(action, argparse._AppendAction):
        return [convert(part.strip()) for part in raw.split(",") if part.strip()]
    value = convert(raw)
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobsim",
        description="A real Redis-backed priority job queue, and a simulator around it.",
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
        "--grace-s seconds, then go back to the queue. " + _ENV_HELP,
    )
    add_queue_args(worker, many=True, weights=True)
    worker.add_argument(
        "--workers",
        "--concurrency",
        dest="workers",
        action=DeprecatedAlias,
        type=at_least(1),
        default=4,
        metavar="N",
        help="workers (default 4; --concurrency is a deprecated alias)",
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
    bench.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    bench.add_argument(
        "--peers",
        action="store_true",
        help="also measure installed peer queues, and HTTP submit beside a bare FastAPI POST",
    )
    bench.add_argument(
        "--cluster",
        action="store_true",
        help="instead: start a 3-shard Redis Cluster and measure N queues over the shards "
        "against one shard, the Redis-side cost per job, the durability knob's cost and "
        "what a failover loses (writes cluster.json and cluster.md)",
    )
    bench.add_argument("--out", default="bench-out", help="output folder (default bench-out)")
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
        "stops gracefully: in-flight jobs get --grace-s seconds, then go back to the queue. "
        + _ENV_HELP,
    )
    add_queue_args(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    serve.add_argument(
        "--workers",
        "--concurrency",
        dest="workers",
        action=DeprecatedAlias,
        type=at_least(0),
        default=4,
        metavar="N",
        help="workers to run (default 4; 0: none, e.g. when `jobsim worker` runs them; "
        "--concurrency is a deprecated alias)",
    )
    add_worker_args(serve)
    serve.add_argument(
        "--worker-process",
        choices=["auto", "on", "off"],
        default="auto",
        help="on: run the --workers threads in one supervised child process, so they share no "
        "interpreter lock with the HTTP server (restarted if it dies); off: threads in the "
        "server's process; auto (default): on with a Redis URL, off on the embedded backend "
        "(its data lives in this process) and with --processes",
    )
    serve.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="server log level; 'warning' hides the access log (default info)",
    )
    limits = serve.add_argument_group(
        "connection limits", "bound slow or greedy clients (slow loris, connection floods)"
    )
    limits.add_argument(
        "--read-timeout-s",
        type=positive,
        default=ServerDefaults.read_timeout_s,
        help="a whole request must arrive within this many seconds of the connection opening "
        f"or of the previous response, or the connection is closed "
        f"(default {ServerDefaults.read_timeout_s:g})",
    )
    limits.add_argument(
        "--keep-alive-s",
        type=positive,
        default=ServerDefaults.keep_alive_s,
        help=f"close a connection idle this long after a response "
        f"(default {ServerDefaults.keep_alive_s:g})",
    )
    limits.add_argument(
        "--limit-concurrency",
        type=at_least(1),
        default=ServerDefaults.limit_concurrency,
        metavar="N",
        help=f"answer 503 to requests while N connections are open "
        f"(default {ServerDefaults.limit_concurrency})",
    )
    limits.add_argument(
        "--max-header-bytes",
        type=at_least(1024),
        default=ServerDefaults.max_header_bytes,
        metavar="N",
        help=f"largest request line and headers (default {ServerDefaults.max_header_bytes})",
    )
    serve.set_defaults(run=run_serve)

    dashboard = sub.add_parser(
        "dashboard",
        help="serve the live dashboard (at /) of a queue that `jobsim worker` runs",
        description="Serve the dashboard at / (and the whole HTTP API) for a queue whose "
        "workers run elsewhere: counts, throughput and wait charts, workers, running jobs, "
        "dead letters (inspect, requeue, purge), a job's attempts, and teaching scenarios, "
        "whose jobs go to the queue for its workers. Starts no workers. With $JOBSIM_API_KEY "
        "set, the page asks for the key (or open /?key=...). Give it the same queue settings "
        "as the workers. " + _ENV_HELP,
    )
    add_queue_args(dashboard)
    dashboard.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    add_worker_args(dashboard)
    dashboard.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="warning",
        help="server log level (default warning: no access log)",
    )
    limits_defaults = {k: v for k, v in vars(ServerDefaults).items() if not k.startswith("_")}
    dashboard.set_defaults(run=run_dashboard, workers=0, **limits_defaults)
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
    demo.add_argument("--jobs", type=int, default=600, help="jobs to submit (600)")
    demo.add_argument("--workers", type=int, default=4, help="worker threads (4)")
    demo.add_argument("--seed", type=int, default=7, help="seed of every draw (7)")
    demo.add_argument(
        "--time-scale", type=float, default=0.2, help="wall seconds per model second (0.2)"
    )
    demo.add_argument("--out", default="jobsim-demo", help="output folder (jobsim-demo)")
    demo.add_argument("--redis", metavar="URL", default=None, help="a real server instead")
    demo.set_defaults(run=commands.demo_command)

    run = sub.add_parser(
        "run",
        help="run one workload with a fault plan; print measured vs theory; write JSON",
        description="Submit a seeded workload to the real queue, inject the faults, drain, "
        "and report measured beside theory with the checker's verdict (exit 1 if invalid).",
    )
    commands.add_run_arguments(run)
    run.add_argument("--json", metavar="FILE", default=None, help="write the summary here")
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
        help="a Workload or Setup field (or rate_per_s) and its values; repeatable",
    )
    sweep.add_argument("--csv", metavar="FILE", default=None, help="write the table here")
    sweep.set_defaults(run=commands.sweep_command)


if __name__ == "__main__":
    raise SystemExit(main())
