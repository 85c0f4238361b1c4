"""The virtual twin against an independent discrete-event simulator (Ciw) on M/M/c.

``python -m benchmarks.twin_vs_ciw [--jobs 100000 1000000] [--ciw-jobs 100000] [--out DIR]``

Runs the same workload (Poisson arrivals, exponential service of mean 1 model second, c
workers, utilisation rho) on both in one process, one after the other, and prints and
writes (``DIR/twin_vs_ciw-<date>.md``) for each size: jobs per second of wall time and of
CPU time (the machine may be shared; CPU time is the steadier figure), and the mean wait
after a 10 % warm-up beside Erlang C's. The twin's figure is a whole ``run``: draws,
engine, frames and summary. Ciw is ``pip install -e '.[bench-sim]'``; without it only the
twin runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from jobsim import theory
from jobsim.sim import Exponential, Poisson, Setup, Workload, run

WARMUP = 0.1


def twin(jobs: int, c: int, rho: float, seed: int) -> float:
    """Mean wait (model s) of the virtual twin after the warm-up."""
    w = Workload(jobs=jobs, arrival=Poisson(rate_per_s=rho * c), service=Exponential(mean_s=1.0),
                 seed=seed)  # fmt: skip
    frame = run(w, setup=Setup(workers=c, backend="virtual")).jobs
    return float(frame["wait_s"].iloc[int(WARMUP * jobs) :].mean())


def ciw_wait(jobs: int, c: int, rho: float, seed: int) -> float:
    """Mean wait of Ciw on the same system after the warm-up (in arrival order)."""
    import ciw  # optional: a benchmark dependency only

    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=rho * c)],
        service_distributions=[ciw.dists.Exponential(rate=1.0)],
        number_of_servers=[c],
    )
    ciw.seed(seed)
    sim = ciw.Simulation(network)
    sim.simulate_until_max_customers(jobs, method="Finish")
    records = sorted(sim.get_all_records(), key=lambda r: r.arrival_date)
    waits = [r.waiting_time for r in records[int(WARMUP * jobs) :]]
    return sum(waits) / len(waits)


def measure(fn: Callable[[int, int, float, int], float], jobs: int, c: int, rho: float,
            seed: int) -> tuple[float, float, float]:  # fmt: skip
    """(mean wait, jobs per wall second, jobs per CPU second)."""
    wall, cpu = time.perf_counter(), time.process_time()
    wait = fn(jobs, c, rho, seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wait, jobs / wall, jobs / cpu


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write the markdown; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="twin run sizes (default: 1e5 1e6)")  # fmt: skip
    parser.add_argument("--ciw-jobs", type=int, nargs="*", default=[100_000],
                        help="Ciw run sizes (default: 1e5; Ciw takes ~20x longer)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=10, help="c (default 10)")
    parser.add_argument("--rho", type=float, default=0.9, help="utilisation (default 0.9)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reps", type=int, default=10,
                        help="twin replications of the first size (wait interval)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="where the dated markdown goes")  # fmt: skip
    args = parser.parse_args(argv)
    c, rho = args.workers, args.rho
    wq = theory.mmc(rho * c, 1.0, c).wq
    try:
        import ciw  # noqa: F401

        peers: list[tuple[str, Callable[..., float], list[int]]] = [
            ("Ciw", ciw_wait, args.ciw_jobs)
        ]
    except ImportError:
        peers = []
        print("Ciw is not installed (pip install -e '.[bench-sim]'): the twin only")
    rows = []
    for name, fn, sizes in [("jobsim virtual", twin, args.jobs), *peers]:
        for jobs in sizes:
            wait, per_wall, per_cpu = measure(fn, jobs, c, rho, args.seed)
            rows.append((name, jobs, per_wall, per_cpu, wait, wait / wq - 1))
            print(f"{name:15} {jobs:>9,} jobs  {per_wall:>10,.0f} jobs/s wall  "
                  f"{per_cpu:>10,.0f} jobs/s CPU  mean wait {wait:.4f} "
                  f"(Erlang C {wq:.4f}, {100 * (wait / wq - 1):+.1f} %)")  # fmt: skip
    reps = [twin(args.jobs[0], c, rho, args.seed + r) for r in range(args.reps)]
    mean = statistics.mean(reps)
    half = 1.96 * statistics.stdev(reps) / math.sqrt(len(reps)) if len(reps) > 1 else math.nan
    replicated = (f"The twin over {len(reps)} replications of {args.jobs[0]:,} jobs (seeds "
                  f"{args.seed}..{args.seed + len(reps) - 1}): mean wait {mean:.4f} ± {half:.4f} "
                  f"(95 %), Erlang C {wq:.4f}.")  # fmt: skip
    print(replicated)
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    lines = [
        f"# The virtual twin vs Ciw: M/M/{c} at rho = {rho} ({today})",
        "",
        f"`python -m benchmarks.twin_vs_ciw` on {platform.node() or 'this machine'} "
        f"(Python {platform.python_version()}), seed {args.seed}; mean wait after a "
        f"{WARMUP:.0%} warm-up, one run each: near rho = 0.9 one run's mean wait is "
        f"noisy (at 10^5 jobs by 10-20 %), so the replicated figure below is the check "
        f"against Erlang C's Wq = {wq:.4f}; the single runs are for speed.",
        "",
        "| simulator | jobs | jobs/s (wall) | jobs/s (CPU) | mean wait | vs Erlang C |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {n} | {j:,} | {pw:,.0f} | {pc:,.0f} | {w:.4f} | {100 * d:+.1f} % |"
            for n, j, pw, pc, w, d in rows
        ),
        "",
        replicated,
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"twin_vs_ciw-{today}.md"
    path.write_text("\n".join(lines))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
