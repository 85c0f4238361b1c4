"""The argument groups and argument types the ``jobsim`` queue commands share, so each flag
is declared once (:mod:`jobsim.cli` builds the parser from them)."""

from __future__ import annotations

import argparse
from typing import Any

from jobsim.cli_parser import DeprecatedAlias, Switch
from jobsim.config import Lease
from jobsim.retry import KINDS

QUEUE_LEASE_S = Lease().duration_s
"""``--lease-s`` of the queue commands (``worker``, ``serve``, ``bench``): the queue's default."""


def add_bench_config_args(bench: argparse.ArgumentParser) -> None:
    """``bench``'s configuration (each flag overrides ``--config``) and its CI gate."""
    config = bench.add_argument_group(
        "your configuration",
        "measure your own settings; a flag, on the command line or as its variable, "
        "overrides --config",
    )
    config.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="a TOML or JSON file of BenchPlan fields (see docs/benchmarks.md)",
    )
    config.add_argument(
        "--workers", metavar="N,N", default=None, help="worker counts, e.g. 1,4 (none: the plan's)"
    )
    config.add_argument(
        "--mode",
        choices=["thread", "process", "both"],
        default=None,
        help="worker kind (none: both)",
    )
    config.add_argument(
        "--lease-s",
        type=positive,
        default=None,
        help=f"lease length (none: {QUEUE_LEASE_S:g}, as the other queue commands)",
    )
    config.add_argument("--retry", choices=KINDS, default=None, help="backoff kind (none: fixed)")
    config.add_argument("--retry-base-s", type=float, default=None, help="first backoff (none: 0)")
    config.add_argument(
        "--payload-bytes",
        type=at_least(0),
        default=None,
        help="payload size (none or 0: no payload)",
    )
    config.add_argument(
        "--mix",
        metavar="TASK=W,...",
        default=None,
        help="task mix of an extra drain: weights of noop, fail_once, sleep_1ms",
    )
    config.add_argument(
        "--jobs", type=at_least(1), default=None, help="jobs per drain (none: the plan's)"
    )
    config.add_argument(
        "--repeat",
        type=at_least(1),
        default=None,
        help="runs of each figure, for min/median/max (none: the plan's)",
    )
    gate = bench.add_argument_group(
        "gate", "compare with an earlier run; figures normalised to the Redis round-trip rate"
    )
    add_json_out_arg(gate, "also write the results here")
    gate.add_argument(
        "--baseline", metavar="FILE", default=None, help="a --json-out of an earlier run"
    )
    gate.add_argument(
        "--max-regression",
        metavar="PCT",
        type=float,
        default=10.0,
        help="exit 1 if a normalised figure is worse than the baseline by more",
    )


def add_json_out_arg(parser: Any, text: str) -> None:
    """``--json-out FILE`` (``run``, ``bench``); ``--json FILE`` is its deprecated alias, since
    the admin commands' ``--json`` is a switch (print JSON) and one name means one thing."""
    parser.add_argument(
        "--json-out", "--json", dest="json", action=DeprecatedAlias, metavar="FILE", default=None,
        help=f"{text} (--json is a deprecated alias)",
    )  # fmt: skip


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def at_least(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def add_queue_args(
    parser: argparse.ArgumentParser, *, many: bool = False, weights: bool = False
) -> None:
    """``--redis`` and ``--queue`` (``many``: repeatable, into ``queues``; ``weights``: with
    ``--weight``), the same on every command that uses a queue."""
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="redis://, rediss://, redis+cluster://host:port[,host:port...] or "
        "redis+sentinel://host:port[,...]/service URL",
    )
    if not many:
        parser.add_argument("--queue", default="default", help="queue name")
        return
    parser.add_argument(
        "--queue",
        dest="queues",
        action="append",
        default=[],
        metavar="NAME",
        help="a queue; repeatable (none: 'default')",
    )
    if not weights:
        return
    parser.add_argument(
        "--weight",
        dest="weights",
        action="append",
        type=float,
        default=[],
        metavar="W",
        help="each --queue's share of the workers, in the same order (none: equal): "
        "every queue gets one worker, the rest go in proportion to the weights",
    )


def add_import_arg(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE``, repeatable."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE to register its @task functions; repeatable",
    )


def add_listen_args(parser: argparse.ArgumentParser, *, log_level: str) -> None:
    """``--host``, ``--port`` and the server's ``--log-level`` (``serve``, ``dashboard``)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free one)")
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=log_level,
        help="server log level; 'warning' hides the access log",
    )


def add_worker_args(parser: argparse.ArgumentParser) -> None:
    """Worker options, and the queue settings workers and producers must share."""
    parser.add_argument(
        "--processes", action=Switch, help="one process per worker instead of threads"
    )
    parser.add_argument(
        "--lease-s",
        type=positive,
        default=QUEUE_LEASE_S,
        help="lease length, the queue's own default for every queue command: workers heartbeat "
        "every third of it, so a long lease only delays the recovery of a job whose worker "
        "died (the simulator commands take theirs in model seconds, scaled to the wall "
        "clock, so their crash faults recover within the run)",
    )
    parser.add_argument("--job-timeout-s", type=float, default=None, help="per-job timeout")
    parser.add_argument(
        "--grace-s", type=float, default=5.0, help="time in-flight jobs get on shutdown"
    )
    add_import_arg(parser)
    config = parser.add_argument_group(
        "queue settings", "use the same values everywhere this queue is used"
    )
    config.add_argument(
        "--aging-s",
        type=float,
        default=None,
        help="seconds of waiting worth one priority level (none: strict priority)",
    )
    config.add_argument("--retry", choices=KINDS, default="exponential", help="backoff kind")
    config.add_argument(
        "--replicas",
        type=int,
        default=0,
        help="durability: WAIT for this many replicas after every write (0: async)",
    )
    config.add_argument(
        "--replica-timeout-ms", type=int, default=1000, help="how long each WAIT may block"
    )
    config.add_argument("--retry-base-s", type=float, default=0.05, help="first backoff")
    config.add_argument("--retry-cap-s", type=float, default=30.0, help="largest backoff")
    config.add_argument(
        "--keep-completed",
        type=int,
        default=10_000,
        metavar="N",
        help="keep the newest N completed job records (0 keeps all)",
    )
    config.add_argument(
        "--keep-completed-s",
        type=float,
        default=86_400.0,
        metavar="S",
        help="drop completed records older than S seconds (86400: a day; 0 keeps all)",
    )


class ServerDefaults:
    """The defaults of the connection limits (mirrors :class:`jobsim.api.server.ServerLimits`,
    which needs the ``api`` extra to import)."""

    read_timeout_s = 10.0
    keep_alive_s = 5.0
    limit_concurrency = 1000
    max_header_bytes = 16 * 1024


def add_server_limit_args(parser: argparse.ArgumentParser) -> None:
    """The HTTP server's connection limits (``serve``, ``dashboard``)."""
    limits = parser.add_argument_group(
        "connection limits", "bound slow or greedy clients (slow loris, connection floods)"
    )
    limits.add_argument(
        "--read-timeout-s",
        type=positive,
        default=ServerDefaults.read_timeout_s,
        help="a whole request must arrive within this many seconds of the connection opening "
        "or of the previous response, or the connection is closed",
    )
    limits.add_argument(
        "--keep-alive-s",
        type=positive,
        default=ServerDefaults.keep_alive_s,
        help="close a connection idle this long after a response",
    )
    limits.add_argument(
        "--limit-concurrency",
        type=at_least(1),
        default=ServerDefaults.limit_concurrency,
        metavar="N",
        help="answer 503 to requests while N connections are open",
    )
    limits.add_argument(
        "--max-header-bytes",
        type=at_least(1024),
        default=ServerDefaults.max_header_bytes,
        metavar="N",
        help="largest request line and headers",
    )
