"""The argument groups and argument types the ``jobsim`` queue commands share, so each flag
is declared once (:mod:`jobsim.cli` builds the parser from them)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jobsim.config import Lease
from jobsim.retry import KINDS

QUEUE_LEASE_S = Lease().duration_s
"""``--lease-s`` of the queue commands (``worker``, ``serve``, ``bench``): the queue's default."""


def add_bench_config_args(bench: argparse.ArgumentParser) -> None:
    """``bench``'s configuration (each flag overrides ``--config``) and its CI gate."""
    config = bench.add_argument_group(
        "your configuration", "measure your own settings; a flag overrides --config"
    )
    config.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="a TOML or JSON file of BenchPlan fields (see docs/benchmarks.md)",
    )
    config.add_argument("--workers", metavar="N,N", default=None, help="worker counts, e.g. 1,4")
    config.add_argument(
        "--mode", choices=["thread", "process", "both"], default=None, help="worker kind (both)"
    )
    config.add_argument(
        "--lease-s",
        type=positive,
        default=None,
        help=f"lease length (default {QUEUE_LEASE_S:g}, as the other queue commands)",
    )
    config.add_argument("--retry", choices=KINDS, default=None, help="backoff kind (fixed)")
    config.add_argument("--retry-base-s", type=float, default=None, help="first backoff (0)")
    config.add_argument(
        "--payload-bytes", type=at_least(0), default=None, help="payload size (0: none)"
    )
    config.add_argument(
        "--mix",
        metavar="TASK=W,...",
        default=None,
        help="task mix of an extra drain: weights of noop, fail_once, sleep_1ms",
    )
    config.add_argument("--jobs", type=at_least(1), default=None, help="jobs per drain")
    config.add_argument(
        "--repeat", type=at_least(1), default=None, help="runs of each figure (min/median/max)"
    )
    gate = bench.add_argument_group(
        "gate", "compare with an earlier run; figures normalised to the Redis round-trip rate"
    )
    gate.add_argument("--json", metavar="FILE", default=None, help="also write the results here")
    gate.add_argument("--baseline", metavar="FILE", default=None, help="a --json of an earlier run")
    gate.add_argument(
        "--max-regression",
        metavar="PCT",
        type=float,
        default=10.0,
        help="exit 1 if a normalised figure is worse than the baseline by more (default 10)",
    )


class DeprecatedAlias(argparse.Action):
    """Stores the value; warns on stderr when given as ``--concurrency`` (say ``--workers``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if option_string == "--concurrency":
            print("jobsim: --concurrency is deprecated; use --workers", file=sys.stderr)
        setattr(namespace, self.dest, values)


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


def add_queue_args(
    parser: argparse.ArgumentParser, *, many: bool = False, weights: bool = False
) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="redis://, rediss://, redis+cluster://host:port[,host:port...] or "
        "redis+sentinel://host:port[,...]/service URL (default: $JOBSIM_REDIS_URL)",
    )
    if not many:
        parser.add_argument("--queue", default="default", help="queue name (default 'default')")
        return
    parser.add_argument(
        "--queue",
        dest="queues",
        action="append",
        default=[],
        metavar="NAME",
        help="a queue; repeat for several (default 'default')",
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
        help="each --queue's share of the workers, in the same order (default equal): "
        "every queue gets one worker, the rest go in proportion to the weights",
    )


def add_worker_args(parser: argparse.ArgumentParser) -> None:
    """Worker options, and the queue settings workers and producers must share."""
    parser.add_argument(
        "--processes", action="store_true", help="one process per worker instead of threads"
    )
    parser.add_argument(
        "--lease-s",
        type=positive,
        default=QUEUE_LEASE_S,
        help=f"lease length (default {QUEUE_LEASE_S:g}, the queue's own default for every queue "
        "command: workers heartbeat every third of it, so a long lease only delays the "
        "recovery of a job whose worker died; the simulator commands take theirs in model "
        "seconds, scaled to the wall clock, so their crash faults recover within the run)",
    )
    parser.add_argument("--job-timeout-s", type=float, default=None, help="per-job timeout")
    parser.add_argument(
        "--grace-s", type=float, default=5.0, help="time in-flight jobs get on shutdown (default 5)"
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE to register its @task functions",
    )
    config = parser.add_argument_group(
        "queue settings", "use the same values everywhere this queue is used"
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
    config.add_argument(
        "--replicas",
        type=int,
        default=0,
        help="durability: WAIT for this many replicas after every write (default 0: async)",
    )
    config.add_argument(
        "--replica-timeout-ms",
        type=int,
        default=1000,
        help="how long each WAIT may block (default 1000)",
    )
    config.add_argument("--retry-base-s", type=float, default=0.05, help="first backoff (0.05)")
    config.add_argument("--retry-cap-s", type=float, default=30.0, help="largest backoff (30)")
    config.add_argument(
        "--keep-completed",
        type=int,
        default=10_000,
        metavar="N",
        help="keep the newest N completed job records (10000; 0 keeps all)",
    )
    config.add_argument(
        "--keep-completed-s",
        type=float,
        default=86_400.0,
        metavar="S",
        help="drop completed records older than S seconds (86400, a day; 0 keeps all)",
    )
