"""The virtual backend's engines agree bit for bit wherever more than one applies."""

from __future__ import annotations

import pytest

from jobsim.retry import RetryPolicy
from jobsim.sim import (
    AllAtOnce,
    Exponential,
    FaultPlan,
    Fixed,
    Poisson,
    Replay,
    Setup,
    Workload,
    run,
)
from jobsim.sim.virtual import engine, fifo, leased
from jobsim.sim.virtual.trace import MAX_SAMPLES


@pytest.mark.parametrize(
    ("workload", "workers"),
    [
        (Workload(jobs=20_000, arrival=Poisson(rate_per_s=9.0), seed=4), 10),
        (Workload(jobs=3_000, arrival=Poisson(rate_per_s=0.9), service=Fixed(seconds=1.0)), 1),
        (Workload(jobs=500, arrival=AllAtOnce(), service=Fixed(seconds=1.0)), 3),  # all ties
        (
            Workload(
                jobs=6,
                arrival=Replay(times_s=(0, 0, 1, 1, 1, 5)),
                service=Exponential(mean_s=2.0),
                seed=2,
            ),
            2,
        ),
    ],
)
def test_the_fifo_recursion_is_the_event_loop(workload: Workload, workers: int) -> None:
    draws = workload.draws()
    assert fifo.applies(workload, draws, FaultPlan())
    setup = Setup(workers=workers, backend="virtual")
    fast = fifo.simulate_fifo(workload, draws, setup)
    loop = engine.simulate(workload, draws, FaultPlan(), setup)
    order = sorted(range(len(loop.job)), key=lambda a: loop.job[a])  # the loop logs by start
    assert [loop.start[a] for a in order] == fast.start
    assert [loop.end[a] for a in order] == fast.end
    assert [loop.worker[a] for a in order] == fast.worker
    assert loop.finished == fast.finished
    assert loop.samples == fast.samples
    assert len(set(fast.worker)) == workers


def test_the_recursion_steps_aside_for_priorities_failures_and_faults() -> None:
    w = Workload(jobs=100, seed=1)
    assert fifo.applies(w, w.draws(), FaultPlan())
    for other, faults in [
        (Workload(jobs=100, priorities={0: 1, 9: 1}), FaultPlan()),
        (Workload(jobs=100, fail_probability=0.1), FaultPlan()),
        (w, FaultPlan(slow_worker_factor=2.0)),
        (w, FaultPlan(poison={3: "fail_once"})),
    ]:
        assert not fifo.applies(other, other.draws(), faults)


def test_a_run_far_longer_than_its_arrivals_keeps_a_bounded_sample_grid() -> None:
    """A 1,000 model s backoff comes long after arrivals that end near
    60 s: the grid thins itself (every other sample dropped, the step doubled), the same
    way in both loops, and Little's law still holds on it."""
    w = Workload(jobs=500, arrival=Poisson(rate_per_s=8.0), fail_probability=0.2, seed=3)
    setup = Setup(
        workers=10, backend="virtual", retry=RetryPolicy(kind="fixed", base_s=1000.0, cap_s=1000.0)
    )
    draws = w.draws()
    loop = engine.simulate(w, draws, FaultPlan(), setup)
    assert loop.samples == leased.simulate_leased(w, draws, FaultPlan(), setup).samples
    assert MAX_SAMPLES // 2 <= len(loop.samples) < MAX_SAMPLES
    assert loop.samples[-1][0] > 1000.0
    law = run(w, setup=setup).summary.littles_law
    assert abs(law.l_sampled - law.lambda_w) <= 0.05 * law.lambda_w
