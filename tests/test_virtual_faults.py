"""Leases, crashes, timeouts and Redis faults on the virtual backend, pinned to the real
queue (embedded fakeredis and a redis-server) on deterministic scenarios, and the leased
engine pinned to the main loop where both apply."""

from __future__ import annotations

from typing import Any

import pytest

from jobsim.localredis import LocalRedis
from jobsim.retry import RetryPolicy
from jobsim.sim import FaultPlan, Fixed, Poisson, Replay, RunResult, Setup, Workload, run
from jobsim.sim.faults import Pause, Restart, Spike
from jobsim.sim.virtual import engine, leased

VIRTUAL = "virtual"
# Three bursts of three jobs, 0.25 model s apart, 8 s between bursts; 1 s of work each, so
# every burst is queued before its first job ends and drained before the next begins.
BURSTS = tuple(8.0 * b + 0.25 * k for b in range(3) for k in range(3))
WORKLOAD = Workload(jobs=len(BURSTS), arrival=Replay(times_s=BURSTS), service=Fixed(seconds=1.0),
                    priorities={0: 1, 5: 1, 9: 1}, max_retries=1, time_scale=0.3,
                    seed=2)  # fmt: skip


def _observed(result: RunResult) -> dict[str, Any]:
    """What must agree exactly: the service order with each attempt's outcome, attempts per
    job, dead letters, and the checker's duplicates, redeliveries and losses."""
    a = result.attempts.sort_values("started", kind="stable")
    v = result.verdict
    return {
        "order": list(zip(a.job_id, a.number.astype(int), a.outcome, strict=True)),
        "attempts": dict(zip(result.jobs.job_id, result.jobs.attempts.astype(int), strict=True)),
        "dead": sorted(result.jobs.loc[result.jobs.outcome == "failed", "job_id"]),
        "fenced": dict(zip(result.jobs.job_id, result.jobs.fenced.astype(int), strict=True)),
        "checker": (v.duplicates, v.redelivered, v.lost, v.valid),
    }


SCENARIOS = {
    # poison crash: the task abandons the job; its lease (3 model s) expires, it is queued
    # again behind what is queued, and dead-lettered when its two attempts are used
    "poison crash": (FaultPlan(poison={1: "crash"}), {"lease_s": 0.9}),
    # a spike makes the first job of burst 2 run 3 s; the 2 s timeout fails it (retried),
    # the thread runs on and its late result is fenced: one duplicate, counted
    "job timeout": (
        FaultPlan(spikes=(Spike(start_s=7.9, end_s=8.1, extra_s=2.0),)),
        {"job_timeout_s": 0.6, "lease_s": 5.0},
    ),
    # the crash at 10.97 s hits the job running 10-11 s: its result is thrown away (a
    # duplicate), its lease expires 3 s after the last heartbeat and it runs again
    "worker crash": (FaultPlan(worker_crashes=1, seed=3), {"lease_s": 0.9}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_conformance_with_the_real_queue(name: str, redis_server: LocalRedis) -> None:
    faults, settings = SCENARIOS[name]
    virtual = _observed(run(WORKLOAD, faults, Setup(workers=1, backend=VIRTUAL, **settings)))
    assert virtual["checker"][0] + virtual["checker"][1] >= 1  # the fault did something
    for backend in ("embedded", redis_server.url):
        real = _observed(run(WORKLOAD, faults, Setup(workers=1, backend=backend, **settings)))
        assert real == virtual, backend


def test_poison_crash_is_delivered_until_the_cap_then_dead_lettered() -> None:
    faults, settings = SCENARIOS["poison crash"]
    result = run(WORKLOAD, faults, Setup(workers=1, backend=VIRTUAL, **settings))
    a = result.attempts[result.attempts.job_id == "j000001"]
    assert list(a.outcome) == ["expired", "expired"]
    lease_m = 0.9 / WORKLOAD.time_scale
    assert list((a.ended - a.started) / WORKLOAD.time_scale) == pytest.approx([lease_m] * 2)
    assert _observed(result)["dead"] == ["j000001"]
    assert result.verdict.redelivered == 1 and result.verdict.duplicates == 0


def test_a_pause_holds_every_transition_until_it_ends(redis_server: LocalRedis) -> None:
    """Paused from 8.6 to 9.6 model s (after burst 2 is queued): the job running 8-9 s is
    acked at 9.6 and the next starts then. Exact on the twin; on a redis-server the order and
    counts agree and the next start is no earlier than the pause's end (the embedded backend
    has no connections to pause, so it skips the fault)."""
    faults = FaultPlan(redis_pauses=(Pause(at_s=8.6, duration_s=1.0),))
    virtual = run(WORKLOAD, faults, Setup(workers=1, backend=VIRTUAL))
    starts = virtual.attempts.sort_values("started").started / WORKLOAD.time_scale
    assert list(starts.round(9))[3:6] == [8.0, 9.6, 10.6]
    assert virtual.jobs.finished.max() / WORKLOAD.time_scale == pytest.approx(19.0)
    real = run(WORKLOAD, faults, Setup(workers=1, backend=redis_server.url))
    assert _observed(real) == _observed(virtual)
    real_starts = sorted(real.attempts.started / WORKLOAD.time_scale)
    assert real_starts[4] >= 9.6 - 0.05


def test_a_restart_without_persistence_loses_what_was_submitted_before_it() -> None:
    for persistence, lost in [("none", 6), ("everysec", 0), ("always", 0)]:
        faults = FaultPlan(redis_restart=Restart(at_s=10.2, persistence=persistence))  # type: ignore[arg-type]
        result = run(WORKLOAD, faults, Setup(workers=1, backend=VIRTUAL))
        assert result.verdict.lost == lost, persistence
        assert len(result.jobs) == WORKLOAD.jobs - lost
        assert result.verdict.completed + result.verdict.lost == WORKLOAD.jobs
        assert [kind for _, kind, _ in result.events] == ["restart"]


@pytest.mark.parametrize("seed", [1, 2])
def test_the_leased_engine_is_the_main_loop_where_both_apply(seed: int) -> None:
    w = Workload(jobs=3000, arrival=Poisson(rate_per_s=3.5), priorities={0: 1, 5: 1},
                 fail_probability=0.2, seed=seed)  # fmt: skip
    faults = FaultPlan(poison={4: "fail", 7: "fail_once"}, exception_probability=0.05,
                       slow_worker_factor=2.0)  # fmt: skip
    setup = Setup(workers=4, backend=VIRTUAL, aging_s=0.02,
                  retry=RetryPolicy(kind="decorrelated", base_s=0.01))  # fmt: skip
    draws = w.draws()
    a = engine.simulate(w, draws, faults, setup)
    b = leased.simulate_leased(w, draws, faults, setup)
    assert (a.job, a.number, a.worker, a.start, a.end, a.error) == (
        b.job, b.number, b.worker, b.start, b.end, b.error
    )  # fmt: skip
    assert (a.finished, a.dead, a.samples) == (b.finished, b.dead, b.samples)


def test_many_crashes_lose_nothing_and_count_every_duplicate() -> None:
    w = Workload(jobs=2000, arrival=Poisson(rate_per_s=3.0), fail_probability=0.1, seed=4)
    faults = FaultPlan(worker_crashes=40, poison={5: "crash"}, seed=1)
    r = run(w, faults, Setup(workers=4, backend=VIRTUAL, lease_s=0.5, job_timeout_s=0.2))
    v = r.verdict
    assert v.valid and v.completed + v.dead_lettered == w.jobs
    assert v.duplicates > 0 and v.redelivered > 0
    assert (r.jobs.attempts <= w.max_retries + 1).all()
    assert set(r.attempts.outcome) >= {"completed", "expired", "timeout"}
    assert r.summary.duplicates == v.duplicates
