"""The virtual twin's engine speed with each queue feature on.

``python -m benchmarks.twin_features [--jobs 100000]``

One M/M/10-like workload (Poisson arrivals at 9 a model second, exponential service of
mean 1 s), simulated (engine only: no frames, no summary) plainly and with each feature:
a concurrency limit of 10 on 12 workers, a rate limit of 9.5 a second (burst 5) on 12
workers, exponential delays of mean 2 s, ten queue pauses of 5 s. Prints jobs per CPU
second, best of three (the machine may be shared; CPU time is the steadier figure).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from jobsim.limits import RateLimit
from jobsim.sim import Exponential, FaultPlan, Poisson, Setup, Workload
from jobsim.sim.faults import Pause
from jobsim.sim.virtual import simulate


def cases(jobs: int) -> dict[str, tuple[Workload, FaultPlan, Setup]]:
    """The runs to time, by name."""
    w = Workload(jobs=jobs, arrival=Poisson(rate_per_s=9.0), service=Exponential(mean_s=1.0),
                 seed=1)  # fmt: skip
    pauses = tuple(Pause(at_s=1000.0 * i, duration_s=5.0) for i in range(1, 11))
    setup = Setup(workers=10, backend="virtual")
    return {
        "no feature (FIFO recursion)": (w, FaultPlan(), setup),
        "concurrency_limit=10, 12 workers": (
            w, FaultPlan(), replace(setup, workers=12, concurrency_limit=10)
        ),
        "rate_limit 9.5/s burst 5, 12 workers": (
            w, FaultPlan(), replace(setup, workers=12, rate_limit=RateLimit(per_s=9.5, burst=5))
        ),
        "delay Exponential(mean 2 s)": (
            replace(w, delay=Exponential(mean_s=2.0)), FaultPlan(), setup
        ),
        "10 queue pauses of 5 s": (w, FaultPlan(queue_pauses=pauses), setup),
    }  # fmt: skip


def main() -> None:
    """Time each case and print jobs per CPU second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    for name, (w, faults, setup) in cases(args.jobs).items():
        best = float("inf")
        for _ in range(3):
            began = time.process_time()
            simulate(w, w.draws(), faults, setup)
            best = min(best, time.process_time() - began)
        print(f"{name}: {w.jobs / best:,.0f} jobs/s CPU ({best:.2f} s, best of 3)")


if __name__ == "__main__":
    main()
