"""The simulator's command-line commands: ``jobsim demo``, ``jobsim run``, ``jobsim sweep``.

:mod:`jobsim.cli` registers them; the parsing of workload, fault and setup flags lives here
beside the objects they build.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from jobsim.cli_parser import Switch
from jobsim.errors import JobsimError
from jobsim.sim.faults import FaultPlan, Pause, Poison, Restart
from jobsim.sim.outputs import format_summary, priority_table, summary_json, write_outputs
from jobsim.sim.runner import run
from jobsim.sim.setup import Setup
from jobsim.sim.sweep import sweep
from jobsim.sim.workload import (
    AllAtOnce,
    Arrival,
    Bimodal,
    Bursty,
    Constant,
    Exponential,
    Fixed,
    Lognormal,
    Poisson,
    Service,
    Workload,
)

# --- flags ------------------------------------------------------------------------------------


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Workload, fault and setup flags shared by ``run`` and ``sweep``."""
    w = parser.add_argument_group("workload (model seconds)")
    w.add_argument("--jobs", type=int, default=1000, help="jobs to submit")
    w.add_argument(
        "--arrival",
        choices=["poisson", "constant", "bursty", "all"],
        default="poisson",
        help="arrival process",
    )
    w.add_argument("--rate", type=positive, default=3.0, help="arrivals per model second")
    w.add_argument("--burst-on-s", type=positive, default=5.0, help="bursty: on-period")
    w.add_argument("--burst-off-s", type=not_negative, default=5.0, help="bursty: off-period")
    w.add_argument(
        "--service",
        choices=["exponential", "fixed", "lognormal", "bimodal"],
        default="exponential",
        help="service-time distribution",
    )
    w.add_argument("--mean-s", type=not_negative, default=1.0, help="mean service time")
    w.add_argument(
        "--scv", type=positive, default=4.0, help="lognormal: squared coeff. of variation"
    )
    w.add_argument(
        "--priorities",
        default="0:1",
        metavar="P:SHARE,...",
        help="priority mix, e.g. 9:0.2,0:0.8 (0:1: all priority 0)",
    )
    w.add_argument("--fail-probability", type=float, default=0.0, help="per attempt")
    w.add_argument("--max-retries", type=int, default=3, help="retries per job")
    w.add_argument(
        "--time-scale",
        type=float,
        default=0.01,
        help="wall seconds per model second (0.01: 100x faster than the model)",
    )
    w.add_argument("--seed", type=int, default=0, help="seed of every draw")
    f = parser.add_argument_group("faults (times in model seconds)")
    f.add_argument(
        "--exception-probability", type=float, default=0.0, help="extra chance any attempt raises"
    )
    f.add_argument(
        "--poison",
        default="",
        metavar="I:MODE,...",
        help="job index -> fail, crash or fail_once, e.g. 3:crash,7:fail",
    )
    f.add_argument("--crashes", type=int, default=0, help="workers killed mid-job")
    f.add_argument("--drops", default="", metavar="T,...", help="CLIENT KILL at these times")
    f.add_argument("--pause", default="", metavar="T:D,...", help="CLIENT PAUSE D at time T")
    f.add_argument(
        "--restart",
        default=None,
        metavar="T:PERSISTENCE",
        help="restart Redis at T with none, everysec or always (needs --local)",
    )
    f.add_argument("--slow-factor", type=float, default=1.0, help="first worker this much slower")
    s = parser.add_argument_group("setup")
    s.add_argument("--workers", type=int, default=4, help="workers")
    s.add_argument("--processes", action=Switch, help="one process per worker instead of threads")
    s.add_argument(
        "--lease-s",
        type=positive,
        default=Setup().lease_s,
        help="lease, model seconds: every simulator run's default, 300 mean services of 1 s, "
        "so a healthy job keeps its lease on a loaded machine while a crashed worker's job "
        "comes back within the run (the demo, ~30 s in all, uses 5)",
    )
    where = s.add_mutually_exclusive_group()
    where.add_argument(
        "--redis", metavar="URL", default=None, help="a real server (none: embedded)"
    )
    where.add_argument(
        "--local", action=Switch, help="start a throwaway redis-server (needed for --restart)"
    )


def positive(text: str) -> float:
    """An argparse type: a finite number > 0."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def not_negative(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def workload_from(args: argparse.Namespace) -> Workload:
    """The :class:`Workload` the flags describe."""
    return Workload(
        jobs=args.jobs,
        arrival=_arrival(args),
        service=_service(args),
        priorities=_pairs("--priorities", args.priorities, int, float),
        fail_probability=args.fail_probability,
        max_retries=args.max_retries,
        time_scale=args.time_scale,
        seed=args.seed,
    )


def _arrival(args: argparse.Namespace) -> Arrival:
    if args.arrival == "constant":
        return Constant(rate_per_s=args.rate)
    if args.arrival == "bursty":
        on, off = args.burst_on_s, args.burst_off_s
        return Bursty(on_rate_per_s=args.rate * (on + off) / on, on_s=on, off_s=off)
    if args.arrival == "all":
        return AllAtOnce()
    return Poisson(rate_per_s=args.rate)


def _service(args: argparse.Namespace) -> Service:
    mean = args.mean_s
    if args.service == "fixed":
        return Fixed(seconds=mean)
    if args.service == "lognormal":
        return Lognormal(mean_s=mean, scv=args.scv)
    if args.service == "bimodal":  # 90% at half the mean, 10% at 5.5x: the same mean
        return Bimodal(fast_s=mean / 2, slow_s=mean * 5.5, p_slow=0.1)
    return Exponential(mean_s=mean)


def faults_from(args: argparse.Namespace) -> FaultPlan:
    """The :class:`FaultPlan` the flags describe."""
    restart = None
    if args.restart:
        at, _, persistence = args.restart.partition(":")
        at_s = _convert("--restart", at, float)
        restart = Restart(at_s=at_s, persistence=persistence or "always")
    poison: dict[int, Poison] = _pairs("--poison", args.poison, int, str)
    return FaultPlan(
        exception_probability=args.exception_probability,
        poison=poison,
        worker_crashes=args.crashes,
        redis_drops=tuple(_convert("--drops", t, float) for t in args.drops.split(",") if t),
        redis_pauses=tuple(
            Pause(at_s=a, duration_s=d)
            for a, d in _pairs("--pause", args.pause, float, float).items()
        ),
        redis_restart=restart,
        slow_worker_factor=args.slow_factor,
        seed=args.seed,
    )


def setup_from(args: argparse.Namespace) -> Setup:
    """The :class:`Setup` the flags describe."""
    backend = args.redis or ("local" if args.local else "embedded")
    return Setup(
        workers=args.workers,
        mode="process" if args.processes else "thread",
        backend=backend,
        lease_s=args.lease_s,
    )


def _pairs(flag: str, text: str, key: type, value: type) -> dict[Any, Any]:
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        k, sep, v = item.partition(":")
        if not sep:
            raise JobsimError(f"{flag}: expected KEY:VALUE, got {item!r}")
        out[_convert(flag, k, key)] = _convert(flag, v, value)
    return out


def _convert(flag: str, text: str, kind: type) -> Any:
    try:
        return kind(text.strip())
    except ValueError:
        what = "a number" if kind is float else "an integer"
        raise JobsimError(f"{flag}: {text!r} is not {what}") from None


# --- commands ---------------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> int:
    """``jobsim run``: one run; prints the summary, writes ``--json`` and ``--out``."""
    result = run(workload_from(args), faults_from(args), setup_from(args), progress=True)
    print(format_summary(result))
    if args.json:
        Path(args.json).write_text(summary_json(result))
        print(f"wrote {args.json}")
    if args.out:
        for path in write_outputs(result, Path(args.out)):
            print(f"wrote {path}")
    return 0 if result.summary.valid else 1


def sweep_command(args: argparse.Namespace) -> int:
    """``jobsim sweep``: every combination of ``--grid`` values; writes ``--csv``."""
    grid = {}
    fields = {*Workload.__dataclass_fields__, *Setup.__dataclass_fields__, "rate_per_s"}
    for spec in args.grid:
        name, sep, values = spec.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values:
            raise JobsimError(f"--grid {spec!r}: expected NAME=V1,V2,...")
        if name not in fields:
            known = ", ".join(sorted(fields - {"arrival", "service"}))
            raise JobsimError(f"--grid {spec!r}: {name!r} is not one of {known}")
        grid[name] = [_number(v) for v in values.split(",")]
    frame = sweep(
        grid,
        workload=workload_from(args),
        faults=faults_from(args),
        setup=setup_from(args),
        progress=True,
    )
    columns = [*grid, "valid", "completed", "failed", "lost", "attempts_per_job",
               "dead_letter_rate", "wait_s.mean", "theory.wait_s", "throughput_per_s"]  # fmt: skip
    print(frame[[c for c in columns if c in frame]].to_string(index=False))
    if args.csv:
        frame.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0 if frame["valid"].all() else 1


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# --- the demo ---------------------------------------------------------------------------------

DEMO = Workload(
    jobs=600,
    arrival=Poisson(rate_per_s=5.0),
    service=Exponential(mean_s=0.5),
    priorities={9: 0.2, 5: 0.3, 0: 0.5},
    fail_probability=0.15,
    max_retries=3,
    time_scale=0.2,
    seed=7,
)
"""The default scenario: M/M/4 at rho ~0.74 after retries, three priority classes."""

DEMO_FAULTS = FaultPlan(poison={10: "fail", 20: "crash"}, worker_crashes=1, seed=7)


def demo_command(args: argparse.Namespace) -> int:
    """``jobsim demo``: the default scenario on the embedded backend, explained."""
    workload = Workload(
        **{**DEMO.__dict__, "jobs": args.jobs, "seed": args.seed, "time_scale": args.time_scale}
    )
    # 5 model s (1 wall s at the default time scale), not the simulator default: the demo
    # kills a worker and crashes a job, and each comes back after one lease
    setup = Setup(workers=args.workers, backend=args.redis or "embedded", lease_s=5.0)
    print(
        f"jobsim demo: {workload.jobs} jobs, Poisson arrivals at "
        f"{workload.arrival_rate_per_s:g}/s, "
        f"exponential service with mean {workload.service.mean_s:g} s, priorities 9/5/0, "
        f"{workload.fail_probability:.0%} of attempts fail (up to {workload.max_retries} retries), "
        f"one poison job, one job that crashes its worker, one worker killed mid-run; "
        f"{setup.workers} workers; time runs {1 / workload.time_scale:g}x faster than the model",
        file=sys.stderr,
    )
    result = run(workload, DEMO_FAULTS, setup, progress=True)
    print(format_summary(result, ignore_faults=True))
    print(priority_table(result))
    paths = write_outputs(result, Path(args.out))
    print(f"\nwrote {len(paths)} files to {args.out}/: " + ", ".join(p.name for p in paths))
    return 0 if result.summary.valid else 1
