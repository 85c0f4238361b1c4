"""The virtual backend's engines agree bit for bit wherever more than one applies."""

from __future__ import annotations

import pytest

from jobsim.sim import AllAtOnce, Exponential, FaultPlan, Fixed, Poisson, Replay, Setup, Workload
from jobsim.sim.virtual import engine, fifo


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
