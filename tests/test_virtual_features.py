"""The queue features on the virtual backend (rate and concurrency limits on the simulated
task, delayed jobs, queue pause windows), pinned to the real queue (embedded fakeredis and
a redis-server) on deterministic scenarios, with the twin's exact invariants and the
theory where one applies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from jobsim.errors import InvalidInputError
from jobsim.limits import RateLimit
from jobsim.localredis import LocalRedis
from jobsim.sim import (
    Bimodal,
    Exponential,
    FaultPlan,
    Fixed,
    Poisson,
    Replay,
    RunResult,
    Setup,
    Workload,
    run,
)
from jobsim.sim.faults import Pause
from jobsim.sim.runner import task_limits
from jobsim.sim.virtual import queue_features
from jobsim.sim.virtual.limits import EPS
from jobsim.theory import mean_band, mmc
from tests.support.conformance import bursts, observed

VIRTUAL = "virtual"

# Every scenario: 1 s of work a job, time_scale 0.3, no two events on different clients
# closer than 0.1 model s (30 ms wall), and an order the feature changes (the comment
# gives the order without it).
SCENARIOS = {
    # 0.5 tokens a model second, burst 2: j0 and j1 take the burst; j2 (p5) waits for the
    # token at 2.0 while both workers idle from 1.0, and j3 (p9) arriving at 1.5 takes it;
    # j2 gets the next, at 4.0 (without the limit: j0 j1 j2 j3)
    "rate limit": (
        bursts(0.0, 0.1, 0.2, 1.5),
        FaultPlan(),
        Setup(workers=2, rate_limit=RateLimit(per_s=0.5, burst=2)),
    ),
    # one at a time on two workers: j1 waits behind j0; j2 (p5) arrives at 0.5 and takes
    # the slot j0's ack frees at 1.0, on j0's worker (without the limit: j0 j1 j2)
    "concurrency limit": (
        bursts(0.0, 0.1, 0.5),
        FaultPlan(),
        Setup(workers=2, concurrency_limit=1),
    ),
    # j0 is delayed 1.5 s (seed 22 draws it, and priorities 5 9 9 5): due at 1.5 while j2
    # runs, so the DEQUEUE at 2.1 promotes it, behind j3 submitted at 1.8 with its
    # priority (promoted when due, it would run before j3)
    "delayed job": (
        Workload(
            jobs=4,
            arrival=Replay(times_s=(0.0, 0.1, 0.2, 1.8)),
            service=Fixed(seconds=1.0),
            priorities={0: 1, 5: 1, 9: 1},
            max_retries=1,
            time_scale=0.3,
            seed=22,
            delay=Bimodal(fast_s=0.0, slow_s=1.5, p_slow=0.3),
        ),
        FaultPlan(),
        Setup(workers=1),
    ),
    # paused 0.8-1.8: j0 runs on and is acked at 1.0, nothing is leased; j2 (p5) arrives
    # at 1.5 and goes first at the resume (without the pause: j0 j1 j2)
    "queue pause": (
        bursts(0.0, 0.1, 1.5),
        FaultPlan(queue_pauses=(Pause(at_s=0.8, duration_s=1.0),)),
        Setup(workers=1),
    ),
    # the cap with a retry: j0 fails at 1.0, its slot is freed by the same DEQUEUE that
    # promotes the immediate retry (behind j3, queued earlier at its priority) and leases
    "concurrency limit and a retry": (
        bursts(0.0, 0.1, 0.2, 0.3),
        FaultPlan(poison={0: "fail_once"}),
        Setup(workers=2, concurrency_limit=1),
    ),
    # delays of 0.5 and a pause 0.8-2.2: j1 comes due while j0 runs and is promoted at its
    # end, j2 comes due at 1.7 inside the pause; at the resume j2 (p5) goes first
    "delayed jobs and a queue pause": (
        replace(bursts(0.0, 0.1, 1.2), delay=Fixed(seconds=0.5)),
        FaultPlan(queue_pauses=(Pause(at_s=0.8, duration_s=1.4),)),
        Setup(workers=1),
    ),
}
ORDERS = {
    "rate limit": ["j000000", "j000001", "j000003", "j000002"],
    "concurrency limit": ["j000000", "j000002", "j000001"],
    "delayed job": ["j000001", "j000002", "j000003", "j000000"],
    "queue pause": ["j000000", "j000002", "j000001"],
    "concurrency limit and a retry": ["j000000", "j000003", "j000000", "j000002", "j000001"],
    "delayed jobs and a queue pause": ["j000000", "j000002", "j000001"],
}
STARTS = {  # the twin's, exactly (model s)
    "rate limit": [0.0, 0.1, 2.0, 4.0],
    "concurrency limit": [0.0, 1.0, 2.0],
    "delayed job": [0.1, 1.1, 2.1, 3.1],
    "queue pause": [0.0, 1.8, 2.8],
    "concurrency limit and a retry": [0.0, 1.0, 2.0, 3.0, 4.0],
    "delayed jobs and a queue pause": [0.5, 2.2, 3.2],
}


def _starts(result: RunResult) -> list[float]:
    return sorted(round(t, 9) for t in result.attempts.started)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_feature_conformance_with_the_real_queue(name: str, redis_server: LocalRedis) -> None:
    """The twin, fakeredis and a redis-server give the same service order with each
    attempt's outcome, attempts per job, dead letters and checker counts."""
    workload, faults, setup = SCENARIOS[name]
    result = run(workload, faults, replace(setup, backend=VIRTUAL))
    virtual = observed(result)
    assert [job for job, _, _ in virtual["order"]] == ORDERS[name]
    assert _starts(result) == STARTS[name]
    for backend in ("embedded", redis_server.url):
        real = run(workload, faults, replace(setup, backend=backend))
        assert observed(real) == virtual, backend
        # the real queue is a few ms late, never early
        assert all(r >= v - 1e-3 for r, v in zip(_starts(real), STARTS[name], strict=True))


def test_the_features_take_the_leased_engine() -> None:
    """A limit or a delay is named (the leased engine takes the run); a queue pause is a
    timed event of the plan."""
    assert queue_features(Workload(), Setup()) == []
    named = queue_features(
        Workload(delay=Fixed(seconds=1)),
        Setup(rate_limit=RateLimit(per_s=1), concurrency_limit=2),
    )
    assert named == ["rate_limit", "concurrency_limit", "delay"]
    plan = FaultPlan(queue_pauses=(Pause(at_s=1.0, duration_s=2.0),))
    assert plan.timeline(10.0) == [(1.0, "queue_pause", 2.0), (3.0, "resume", 0.0)]


def _busy(w: Workload, setup: Setup, faults: FaultPlan | None = None) -> RunResult:
    result = run(w, faults, replace(setup, backend=VIRTUAL))
    v = result.verdict
    assert v.valid and v.completed + v.dead_lettered == w.jobs
    return result


LOAD = Workload(jobs=3000, arrival=Poisson(rate_per_s=3.0), service=Exponential(mean_s=1.0),
                priorities={0: 1, 5: 1}, fail_probability=0.1, seed=3)  # fmt: skip


@pytest.mark.parametrize(("per_s", "burst"), [(2.5, 1), (2.0, 7), (0.4, 3)])
def test_no_window_leases_more_than_the_bucket_allows(per_s: float, burst: int) -> None:
    """Leases in any window [t_i, t_j] number at most burst + per_s (t_j - t_i), and an
    idle worker with a job waiting leases exactly when the next token is whole."""
    rate = RateLimit(per_s=per_s, burst=burst)
    w = replace(LOAD, jobs=600)
    result = _busy(w, Setup(workers=6, rate_limit=rate))
    t = np.sort(result.attempts.started.to_numpy())
    i, j = np.triu_indices(len(t), k=1)
    assert ((j - i + 1) <= burst + per_s * (t[j] - t[i]) + 1e-6).all()
    # replay the bucket (tokens when each lease starts): never below one (whole within EPS)
    tokens, last = float(burst), 0.0
    for s in t:
        tokens = min(burst, tokens + (s - last) * per_s)
        assert tokens + EPS >= 1 - 1e-6
        tokens, last = tokens - 1, s


def test_a_rate_below_the_arrival_rate_sets_the_throughput() -> None:
    """λ = 3 > per_s = 2, 1 s jobs on 4 workers (at most 2 run at once, so one is always
    idle): once the backlog has formed every lease is one token interval after the last
    (exact to well under a µs of the queue's clock), so the throughput is per_s."""
    w = Workload(jobs=2000, arrival=Poisson(rate_per_s=3.0), service=Fixed(seconds=1.0),
                 seed=5)  # fmt: skip
    result = _busy(w, Setup(workers=4, rate_limit=RateLimit(per_s=2.0, burst=4)))
    t = np.sort(result.attempts.started.to_numpy())
    gaps = np.diff(t[len(t) // 10 :])  # past the start: the backlog has formed
    assert gaps == pytest.approx(0.5, abs=1e-6)
    assert len(t) <= 4 + 2.0 * (t[-1] - t[0]) + 1e-6  # and never above the bucket's bound
    assert "a rate limit holds leases back" in str(result.summary.theory.note)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_never_more_than_k_leased_at_once(k: int) -> None:
    """With concurrency_limit=k, at no instant do more than k leases overlap (a lease runs
    from its start to its attempt's end, as the ack ends it), and the cap is reached."""
    result = _busy(LOAD, Setup(workers=5, concurrency_limit=k))
    a = result.attempts
    starts, ends = a.started.to_numpy(), a.ended.to_numpy()
    # ends sort before starts at one instant: an ack frees the slot its worker then takes
    times = np.concatenate([ends, starts])
    steps = np.concatenate([-np.ones(len(ends)), np.ones(len(starts))])
    order = np.lexsort((steps, times))
    running = np.cumsum(steps[order])
    assert running.max() == k and running.min() >= 0


def test_a_cap_of_k_on_more_workers_is_k_workers() -> None:
    """c = 5 workers capped at k = 2 serve exactly as 2 workers without a cap (same jobs,
    same start and end times), so the M/M/2 theory applies: its mean wait lies within the
    band of the run's batch means."""
    w = Workload(jobs=20000, arrival=Poisson(rate_per_s=1.4), service=Exponential(mean_s=1.0),
                 seed=7)  # fmt: skip
    capped = _busy(w, Setup(workers=5, concurrency_limit=2))
    plain = _busy(w, Setup(workers=2))
    cols = ["job_id", "number", "started", "ended", "outcome"]
    a = capped.attempts[cols].sort_values(["started", "job_id"]).reset_index(drop=True)
    b = plain.attempts[cols].sort_values(["started", "job_id"]).reset_index(drop=True)
    assert a.equals(b)
    wait = capped.jobs.wait_s.to_numpy()
    batches = wait[len(wait) // 10 :].reshape(-1, 1800).mean(axis=1)  # 10 batches of 1800
    band = mean_band(float(batches.std(ddof=1)), len(batches))  # 4 standard errors
    assert capped.summary.theory.wait_s == pytest.approx(mmc(1.4, 1.0, 2).wq)  # k servers
    assert abs(batches.mean() - mmc(1.4, 1.0, 2).wq) <= band


def test_a_fixed_delay_shifts_every_start_by_it() -> None:
    """One priority and a fixed delay D: the jobs come due in their arrival order, so the
    run is the undelayed run shifted by D, start for start; every wait includes D."""
    w = Workload(jobs=2000, arrival=Poisson(rate_per_s=3.2), service=Exponential(mean_s=1.0),
                 seed=2)  # fmt: skip
    delayed = _busy(replace(w, delay=Fixed(seconds=2.5)), Setup(workers=4))
    plain = _busy(w, Setup(workers=4))
    d = delayed.attempts.sort_values("job_id").started.to_numpy()
    p = plain.attempts.sort_values("job_id").started.to_numpy()
    assert d == pytest.approx(p + 2.5, abs=1e-9)
    assert (delayed.jobs.wait_s >= 2.5 - 1e-9).all()
    theory, undelayed = delayed.summary.theory, plain.summary.theory
    assert theory.wait_s == pytest.approx(undelayed.wait_s + 2.5) and theory.p_wait is None


def test_a_delayed_job_never_starts_before_it_is_due() -> None:
    """Random delays on a loaded queue: no job starts before its submit plus its delay."""
    w = replace(LOAD, delay=Exponential(mean_s=2.0))
    result = _busy(w, Setup(workers=4))
    first = result.attempts[result.attempts.number == 1].sort_values("job_id")
    due = result.jobs.sort_values("job_id").submitted.to_numpy() + w.delays()
    assert (first.started.to_numpy() >= due - 1e-9).all()


def test_nothing_starts_in_a_queue_pause_and_running_jobs_go_on() -> None:
    """No attempt starts inside a pause window; the attempts running when it begins end
    at their planned time; after it, the backlog is served again."""
    w = replace(LOAD, jobs=1000, fail_probability=0.0)
    windows = (Pause(at_s=50.0, duration_s=20.0), Pause(at_s=150.0, duration_s=5.0))
    result = _busy(w, Setup(workers=4), FaultPlan(queue_pauses=windows))
    plain = _busy(w, Setup(workers=4))
    a = result.attempts
    started, ended = a.started, a.ended
    for p in windows:
        assert not ((started >= p.at_s) & (started < p.at_s + p.duration_s)).any()
        across = (started < p.at_s) & (ended > p.at_s)
        assert across.any() and (started[across] >= 0).all()
        assert ((started >= p.at_s + p.duration_s) & (started < p.at_s + p.duration_s + 1e-9)).any()
    service = dict(zip(plain.attempts.job_id, plain.attempts.service_s, strict=True))
    assert a.service_s.to_numpy() == pytest.approx([service[j] for j in a.job_id])
    assert [kind for _, kind, _ in result.events] == ["queue_pause", "resume"] * 2


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Setup(concurrency_limit=0), "concurrency_limit"),
        (lambda: Setup(concurrency_limit=True), "concurrency_limit"),
        (lambda: Setup(rate_limit=2.0), "rate_limit"),  # type: ignore[arg-type]
        (lambda: Workload(delay=2.0), "delay"),  # type: ignore[arg-type]
    ],
)
def test_bad_feature_inputs_are_refused_by_name(make: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        make()
    assert caught.value.field == field


def test_the_real_runner_converts_the_rate_to_wall_time() -> None:
    """per_s tokens a model second are per_s / time_scale a wall second; the cap as given."""
    limits = task_limits(Setup(rate_limit=RateLimit(per_s=0.5, burst=2), concurrency_limit=3), 0.25)
    assert limits == {
        "rate_limits": {"sim": RateLimit(per_s=2.0, burst=2)},
        "concurrency_limits": {"sim": 3},
    }
    assert task_limits(Setup(), 0.25) == {}


def test_the_time_scale_changes_nothing_with_the_features_on() -> None:
    """The features' inputs are model seconds and the twin's token bucket runs on model µs:
    a run with both limits, random delays, a queue pause and retries gives bit-identical
    frames, events and verdict at 0.01 and 1.0 wall s per model s."""
    setup = Setup(workers=5, backend=VIRTUAL, concurrency_limit=3,
                  rate_limit=RateLimit(per_s=2.7, burst=3))  # fmt: skip
    faults = FaultPlan(queue_pauses=(Pause(at_s=60.0, duration_s=7.5),))
    runs = [
        run(replace(LOAD, jobs=800, delay=Exponential(mean_s=1.5), time_scale=scale), faults,
            setup)
        for scale in (0.01, 1.0)
    ]  # fmt: skip
    small, large = runs
    pd.testing.assert_frame_equal(small.jobs, large.jobs, check_exact=True)
    pd.testing.assert_frame_equal(small.attempts, large.attempts, check_exact=True)
    assert small.events == large.events and small.verdict == large.verdict
    assert "retry" in set(small.attempts.outcome)
