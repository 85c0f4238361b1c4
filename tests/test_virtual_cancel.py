"""Cancels at given model times (``FaultPlan.cancels``) on the virtual backend, pinned to the
real queue (embedded fakeredis and a redis-server), with the twin's exact invariants."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobsim.errors import InvalidInputError
from jobsim.localredis import LocalRedis
from jobsim.pool_settings import PoolSettings
from jobsim.sim import FaultPlan, Fixed, Poisson, Replay, Setup, Workload, run
from jobsim.sim.faults import Cancel
from tests.support.conformance import bursts, observed

VIRTUAL = "virtual"


SCENARIOS = {
    # one worker, priorities 9 0 5 9: j0 is cancelled while it runs (0-1: it runs on and
    # ends cancelled at its end), j1 while queued (at once, never runs), j2 after it
    # completed (not applied); without the cancels: j0 j3 j2 j1
    "running, queued, finished": (
        bursts(0.0, 0.1, 0.2, 0.3),
        FaultPlan(
            cancels=(Cancel(at_s=0.5, job=0), Cancel(at_s=0.6, job=1), Cancel(at_s=2.5, job=3))
        ),
        ["j000000", "j000003", "j000002"],
    ),
    # both delayed 1 s: j1 is cancelled while scheduled and never comes due
    "scheduled": (
        replace(bursts(0.0, 0.1), delay=Fixed(seconds=1.0)),
        FaultPlan(cancels=(Cancel(at_s=0.5, job=1),)),
        ["j000000"],
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_cancel_conformance_with_the_real_queue(name: str, redis_server: LocalRedis) -> None:
    """Same service order and outcomes (the cancelled attempt's too), attempts, dead
    letters and checker counts on the twin, fakeredis and a redis-server."""
    workload, faults, order = SCENARIOS[name]
    setup = Setup(workers=1, backend=VIRTUAL)
    result = run(workload, faults, setup)
    virtual = observed(result)
    assert [job for job, _, _ in virtual["order"]] == order
    cancelled = len([c for c in faults.cancels if c.at_s < 2.0])
    assert result.verdict.cancelled == cancelled and result.verdict.valid
    for backend in ("embedded", redis_server.url):
        real = run(workload, faults, replace(setup, backend=backend))
        assert observed(real) == virtual, backend
        assert real.verdict.cancelled == cancelled
        assert (real.jobs.outcome == "cancelled").sum() == cancelled


def test_a_cancelled_running_job_ends_with_its_attempt() -> None:
    """Cancelled at 0.5 while it runs 0-1: its attempt ends at 1.0, outcome cancelled, and
    the job ends cancelled then, never retried; a cancel of a finished job is not applied."""
    workload, faults, _ = SCENARIOS["running, queued, finished"]
    result = run(workload, faults, Setup(workers=1, backend=VIRTUAL))
    a = result.attempts.set_index("job_id")
    assert a.loc["j000000", "outcome"] == "cancelled"
    assert a.loc["j000000", "ended"] == pytest.approx(1.0)
    jobs = result.jobs.set_index("job_id")
    assert jobs.loc["j000001", "attempts"] == 0
    assert jobs.loc["j000001", "finished"] == pytest.approx(0.6)
    assert list(jobs.outcome) == ["cancelled", "cancelled", "completed", "completed"]
    assert [d for _, kind, d in result.events if kind == "cancel"][-1] == (
        "not applied: j000003 is already completed"
    )


def test_a_job_running_past_the_grace_is_taken_back_and_its_result_fenced() -> None:
    """A job of 10 x the pool's grace, cancelled at 1.05 s: its worker hears of it at the
    next heartbeat (1.1: a grid of ``heartbeat_every_s`` = 0.1 from 0), the pool takes the
    lease back one grace later (the job ends cancelled then), and the late result is fenced.
    (time_scale 1: wall and model seconds agree, whichever unit ``lease_s`` is in.)"""
    grace = PoolSettings().grace_s
    w = Workload(jobs=2, arrival=Poisson(rate_per_s=100.0), service=Fixed(seconds=10 * grace),
                 time_scale=1.0, seed=1)  # fmt: skip
    setup = Setup(workers=1, backend=VIRTUAL, lease_s=0.3)  # heartbeats every 0.1 s
    result = run(w, FaultPlan(cancels=(Cancel(at_s=1.05, job=0),)), setup)
    first = result.attempts[result.attempts.job_id == "j000000"].iloc[0]
    assert first.outcome == "cancelled"
    assert first.ended == pytest.approx(1.1 + grace)
    jobs = result.jobs.set_index("job_id")
    assert jobs.loc["j000000", "fenced"] == 1 and result.verdict.duplicates == 1
    assert result.verdict.cancelled == 1 and result.verdict.completed == 1


def test_no_cancelled_job_starts_after_its_cancel() -> None:
    """A loaded queue and forty cancels: every cancelled job's attempts began before its
    cancel, no other job is cancelled, and every job is accounted for."""
    w = Workload(jobs=1000, arrival=Poisson(rate_per_s=3.6), fail_probability=0.2, seed=8)
    cancels = tuple(Cancel(at_s=5.0 * i + 2.5, job=18 * i + 5) for i in range(40))  # ~1 s in
    result = run(w, FaultPlan(cancels=cancels), Setup(workers=4, backend=VIRTUAL))
    v = result.verdict
    assert v.valid and v.completed + v.dead_lettered + v.cancelled == w.jobs
    jobs = result.jobs.set_index("job_id")
    cancelled = set(jobs.index[jobs.outcome == "cancelled"])
    asked = {f"j{c.job:06d}": c.at_s for c in cancels}
    assert cancelled and cancelled <= set(asked) and len(cancelled) == v.cancelled
    for job_id in cancelled:
        starts = result.attempts.loc[result.attempts.job_id == job_id, "started"]
        assert (starts <= asked[job_id]).all()


def test_grace_take_back_conformance_with_the_real_queue(redis_server: LocalRedis) -> None:
    """At time_scale 1 (the pool's grace is 5 model s): j0 runs 0-6 and is cancelled at
    0.3; its worker hears at the heartbeat at 0.5 and the pool takes the lease back at
    5.5 (the job ends cancelled, its late result at 6.0 fenced: a duplicate); j1 waits for
    the thread, 6-12. Same on the twin (exactly) and both real backends (the take-back
    within a few ms: the real heartbeat grid's phase and the supervisor's poll)."""
    w = Workload(jobs=2, arrival=Replay(times_s=(0.0, 0.1)), service=Fixed(seconds=6.0),
                 time_scale=1.0, seed=0)  # fmt: skip
    faults = FaultPlan(cancels=(Cancel(at_s=0.3, job=0),))
    setup = Setup(workers=1, backend=VIRTUAL, lease_s=1.5)  # heartbeats every 0.5 s
    result = run(w, faults, setup)
    virtual = observed(result)
    assert virtual["order"] == [("j000000", 1, "cancelled"), ("j000001", 1, "completed")]
    assert virtual["fenced"] == {"j000000": 1, "j000001": 0}
    taken = result.attempts.ended[result.attempts.job_id == "j000000"].iloc[0]
    assert taken == pytest.approx(5.5)
    for backend in ("embedded", redis_server.url):
        real = run(w, faults, replace(setup, backend=backend))
        assert observed(real) == virtual, backend
        ended = real.attempts.ended[real.attempts.job_id == "j000000"].iloc[0]
        assert 5.5 - 0.05 <= ended < 5.5 + 0.3, backend  # the heartbeat grid's phase: ms


def test_cancels_in_a_process_pool_are_refused_by_name() -> None:
    """Past the grace a process pool kills the process (no late result to fence), which
    the twin does not model: it refuses the run, naming the cancels."""
    faults = FaultPlan(cancels=(Cancel(at_s=1.0, job=0),))
    with pytest.raises(InvalidInputError, match="cancels"):
        run(Workload(jobs=3), faults, Setup(backend=VIRTUAL, mode="process"))
