"""Leases, crashes, timeouts and Redis faults on the virtual backend, pinned to the real
queue (embedded fakeredis and a redis-server) on deterministic scenarios, and the leased
engine pinned to the main loop where both apply."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobsim.localredis import LocalRedis
from jobsim.retry import RetryPolicy
from jobsim.sim import FaultPlan, Fixed, Poisson, Replay, Setup, Workload, run
from jobsim.sim.faults import Pause, Restart, Spike
from jobsim.sim.virtual import engine, leased
from tests.support.conformance import bursts, observed

VIRTUAL = "virtual"


# Four jobs in the first 0.3 model s: all queued 0.7 model s (210 ms wall) before the first
# ends, the first served first however they are batched, so wall timing cannot reorder them.
BURST = bursts(0.0, 0.1, 0.2, 0.3)


SCENARIOS = {
    # poison crash: the task abandons the job; its lease (3 model s) expires, it is queued
    # again behind what is queued, and dead-lettered when its two attempts are used
    "poison crash": (FaultPlan(poison={1: "crash"}), {"lease_s": 3.0}),
    # a spike (on jobs starting before 0.9 s: only the first, however late the real
    # queue starts it) makes the first job run 3 s; the 2 s timeout fails it (retried behind the
    # queue), the thread runs on and its late result is fenced: one duplicate, counted
    "job timeout": (
        FaultPlan(spikes=(Spike(start_s=-0.1, end_s=0.9, extra_s=2.0),)),
        {"job_timeout_s": 2.0, "lease_s": 15.0},
    ),
    # the crash at 0.68 s hits the job running 0-1 s: its result is thrown away (a
    # duplicate). Heartbeats every 0.6 s (a 1.8 s lease) last extend it at 0.6 s, so it
    # expires at 2.4 s while the worker runs 2-3 s, and that job's end gives it back: it
    # runs third. (The real heartbeat grid's phase, a few ms to ~0.3 s, moves the expiry
    # inside 2-3 s only.)
    "worker crash": (FaultPlan(worker_crashes=1, seed=4), {"lease_s": 1.8}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fault_conformance_with_the_real_queue(name: str, redis_server: LocalRedis) -> None:
    faults, settings = SCENARIOS[name]
    virtual = observed(run(BURST, faults, Setup(workers=1, backend=VIRTUAL, **settings)))
    assert virtual["checker"][0] + virtual["checker"][1] >= 1  # the fault did something
    for backend in ("embedded", redis_server.url):
        real = observed(run(BURST, faults, Setup(workers=1, backend=backend, **settings)))
        assert real == virtual, backend


def test_poison_crash_is_delivered_until_the_cap_then_dead_lettered() -> None:
    faults, settings = SCENARIOS["poison crash"]
    result = run(BURST, faults, Setup(workers=1, backend=VIRTUAL, **settings))
    a = result.attempts[result.attempts.job_id == "j000001"]
    assert list(a.outcome) == ["expired", "expired"]
    assert list(a.ended - a.started) == pytest.approx([settings["lease_s"]] * 2)
    assert observed(result)["dead"] == ["j000001"]
    assert result.verdict.redelivered == 1 and result.verdict.duplicates == 0


def test_a_pause_holds_every_transition_until_it_ends(redis_server: LocalRedis) -> None:
    """Paused from 0.8 to 1.8 model s (after all four are queued): the job running 0-1 s is
    acked at 1.8 and the next starts then. Exact on the twin; on a redis-server the order and
    counts agree and the next start is no earlier than the pause's end (wall jitter makes
    it a little later; the embedded backend has no connections to pause and skips it)."""
    faults = FaultPlan(redis_pauses=(Pause(at_s=0.8, duration_s=1.0),))
    virtual = run(BURST, faults, Setup(workers=1, backend=VIRTUAL))
    starts = sorted(virtual.attempts.started)
    assert [round(t, 9) for t in starts] == [0.0, 1.8, 2.8, 3.8]
    assert virtual.attempts.ended.min() == pytest.approx(1.0)  # worker's
    assert virtual.jobs.finished.min() == pytest.approx(1.8)  # Redis's
    real = run(BURST, faults, Setup(workers=1, backend=redis_server.url))
    assert observed(real) == observed(virtual)
    assert sorted(real.attempts.started)[1] >= 1.8 - 0.05


@pytest.mark.parametrize("persistence", ["none", "always"])
def test_restart_conformance_with_a_server_the_run_starts(persistence: str) -> None:
    """A restart at 2.2 s, while the third job runs: without persistence the three jobs
    submitted before it are lost (no record, so no frame rows) and the two after it are
    served; with AOF nothing is lost. Same on the twin and on a redis-server the run starts
    and kills (``backend="local"``)."""
    w = bursts(0.0, 0.1, 0.2, 4.0, 4.1)
    faults = FaultPlan(redis_restart=Restart(at_s=2.2, persistence=persistence))  # type: ignore[arg-type]
    virtual = run(w, faults, Setup(workers=1, backend=VIRTUAL))
    assert virtual.verdict.lost == (3 if persistence == "none" else 0)
    assert len(virtual.jobs) == w.jobs - virtual.verdict.lost
    assert virtual.verdict.completed + virtual.verdict.lost == w.jobs
    assert [kind for _, kind, _ in virtual.events] == ["restart"]
    assert observed(run(w, faults, Setup(workers=1, backend="local"))) == observed(virtual)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_leased_engine_is_the_main_loop_where_both_apply(seed: int) -> None:
    w = Workload(jobs=3000, arrival=Poisson(rate_per_s=3.5), priorities={0: 1, 5: 1},
                 fail_probability=0.2, seed=seed)  # fmt: skip
    faults = FaultPlan(poison={4: "fail", 7: "fail_once"}, exception_probability=0.05,
                       slow_worker_factor=2.0)  # fmt: skip
    setup = Setup(workers=4, backend=VIRTUAL, aging_s=2.0,
                  retry=RetryPolicy(kind="decorrelated", base_s=1.0))  # fmt: skip
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
    r = run(w, faults, Setup(workers=4, backend=VIRTUAL, lease_s=50.0, job_timeout_s=20.0))
    v = r.verdict
    assert v.valid and v.completed + v.dead_lettered == w.jobs
    assert v.duplicates > 0 and v.redelivered > 0
    assert (r.jobs.attempts <= w.max_retries + 1).all()
    assert set(r.attempts.outcome) >= {"completed", "expired", "timeout"}
    assert r.summary.duplicates == v.duplicates


def test_a_due_retry_waits_for_a_dequeue(redis_server: LocalRedis) -> None:
    """A fails at 1 s with a 0.3 s backoff while B runs 1-2 s; C arrives at 1.5 s. No
    worker is idle at 1.3 s to promote A, so the DEQUEUE at B's end does, behind C: the
    order is A, B, C, A on the twin and on both real backends."""
    w = Workload(jobs=3, arrival=Replay(times_s=(0.0, 0.1, 1.5)), service=Fixed(seconds=1.0),
                 max_retries=1, time_scale=0.3, seed=2)  # fmt: skip
    faults = FaultPlan(poison={0: "fail_once"})
    setup = Setup(workers=1, backend=VIRTUAL, retry=RetryPolicy(kind="fixed", base_s=0.3))
    virtual = observed(run(w, faults, setup))
    assert [job for job, _, _ in virtual["order"]] == ["j000000", "j000001", "j000002", "j000000"]
    for backend in ("embedded", redis_server.url):
        assert observed(run(w, faults, replace(setup, backend=backend))) == virtual, backend
