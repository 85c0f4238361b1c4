"""The virtual backend: exact and reproducible, on the formulas, and in conformance with the
real queue on deterministic scenarios."""

from __future__ import annotations

import hashlib
import math
import statistics
import subprocess
import sys

import pandas as pd
import pytest

from jobsim import theory
from jobsim.errors import InvalidInputError
from jobsim.localredis import LocalRedis
from jobsim.retry import RetryPolicy
from jobsim.sim import (
    AllAtOnce,
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
from jobsim.sim.summary import steady_state

T_995 = {4: 4.604, 7: 3.499, 9: 3.250, 11: 3.106}  # t(0.995, df): two-sided 99 %
VIRTUAL = "virtual"


def _digest(result: RunResult) -> str:
    h = hashlib.sha256()
    for frame in (result.jobs, result.attempts):
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()


def _band(values: list[float]) -> tuple[float, float]:
    """Mean of replications and the half-width of its 99 % t-interval."""
    n = len(values)
    return statistics.mean(values), T_995[n - 1] * statistics.stdev(values) / math.sqrt(n)


# --- determinism ------------------------------------------------------------------------------

DETERMINISTIC = (
    "from jobsim.sim import *; from jobsim.retry import RetryPolicy; "
    "from jobsim.sim.faults import Pause; import hashlib, pandas as pd\n"
    "def digest(r):\n"
    "    h = hashlib.sha256()\n"
    "    for f in (r.jobs, r.attempts):\n"
    "        h.update(pd.util.hash_pandas_object(f, index=True).to_numpy().tobytes())\n"
    "    return h.hexdigest()\n"
    "w = Workload(jobs=3000, arrival=Poisson(rate_per_s=3.5), priorities={0: 1, 5: 1}, "
    "fail_probability=0.2, seed=11)\n"
    "s = Setup(workers=4, backend='virtual', retry=RetryPolicy(kind='decorrelated', "
    "base_s=1.0), aging_s=2.0)\n"
    "print(digest(run(w, FaultPlan(poison={4: 'fail'}, exception_probability=0.05), s)))\n"
    "f = FaultPlan(poison={4: 'crash'}, worker_crashes=20, "
    "redis_pauses=(Pause(at_s=50, duration_s=2),), seed=3)\n"
    "print(digest(run(w, f, Setup(workers=4, backend='virtual', lease_s=30.0, "
    "job_timeout_s=10.0))))\n"
    "print(digest(run(Workload(jobs=20000, seed=5), setup=Setup(workers=10, "
    "backend='virtual'))))\n"
)
"""Three runs, one on each engine (main loop, leased, FIFO), each printed as a digest."""


def test_same_seed_gives_bit_identical_frames_in_process_and_across_processes() -> None:
    digests = {
        subprocess.run(
            [sys.executable, "-c", DETERMINISTIC], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(digests) == 1
    assert len(next(iter(digests)).split()) == 3
    workload = Workload(jobs=2000, arrival=Poisson(rate_per_s=3.5), fail_probability=0.2, seed=3)
    setup = Setup(workers=4, backend=VIRTUAL, retry=RetryPolicy(kind="full", base_s=1.0))
    first, second = run(workload, setup=setup), run(workload, setup=setup)
    pd.testing.assert_frame_equal(first.jobs, second.jobs, check_exact=True)
    pd.testing.assert_frame_equal(first.attempts, second.attempts, check_exact=True)
    assert _digest(first) == _digest(second)
    assert _digest(run(Workload(jobs=2000, seed=4), setup=setup)) != _digest(first)


def test_the_time_scale_changes_nothing_on_the_virtual_backend() -> None:
    """Every input is model seconds and the engines never read ``time_scale``: a run with
    backoff, aging, leases, a job timeout, worker crashes, a poison crash and a Redis
    pause gives bit-identical frames, events and summary at 0.01 and 1.0 wall s per model
    s (all but ``wall_s``, the time the run took, and ``time_scale`` itself)."""
    faults = FaultPlan(poison={4: "crash", 9: "fail"}, worker_crashes=15,
                       redis_pauses=(Pause(at_s=40.0, duration_s=3.0),), seed=2)  # fmt: skip
    setup = Setup(workers=4, backend=VIRTUAL, aging_s=2.0, lease_s=6.0, job_timeout_s=8.0,
                  retry=RetryPolicy(kind="decorrelated", base_s=0.5, cap_s=20.0))  # fmt: skip
    runs = [
        run(Workload(jobs=2000, arrival=Poisson(rate_per_s=3.0), priorities={0: 1, 5: 1, 9: 1},
                     fail_probability=0.15, time_scale=scale, seed=8), faults, setup)
        for scale in (0.01, 1.0)
    ]  # fmt: skip
    small, large = runs
    outcomes = set(small.attempts.outcome)
    assert {"retry", "expired", "timeout", "completed"} <= outcomes, outcomes  # all exercised
    assert small.verdict.duplicates > 0 and small.verdict.redelivered > 0
    pd.testing.assert_frame_equal(small.jobs, large.jobs, check_exact=True)
    pd.testing.assert_frame_equal(small.attempts, large.attempts, check_exact=True)
    assert small.events == large.events and small.verdict == large.verdict

    def kept(result: RunResult) -> str:
        summary = result.summary.as_dict()
        del summary["wall_s"], summary["time_scale"]
        return repr(summary)  # repr: NaN == NaN, and floats to the last bit

    assert kept(small) == kept(large)


def test_frames_have_the_real_runners_columns_and_types() -> None:
    w = Workload(jobs=50, fail_probability=0.3, seed=2)
    virtual = run(w, setup=Setup(workers=2, backend=VIRTUAL))
    real = run(w, setup=Setup(workers=2))
    assert list(virtual.jobs.columns) == list(real.jobs.columns)
    assert list(virtual.attempts.columns) == list(real.attempts.columns)
    assert dict(virtual.jobs.dtypes) == dict(real.jobs.dtypes)
    assert dict(virtual.attempts.dtypes) == dict(real.attempts.dtypes)
    assert virtual.summary.valid and virtual.summary.overhead_per_attempt_s == 0.0


def test_every_fault_kind_is_modelled() -> None:
    """Nothing in a fault plan or setup is refused any more (tests/test_virtual_faults.py
    pins each kind to the real queue)."""
    faults = FaultPlan(poison={1: "crash"}, worker_crashes=1, redis_drops=(1.0,),
                       redis_pauses=(Pause(at_s=1, duration_s=1),))  # fmt: skip
    result = run(Workload(jobs=10), faults, Setup(backend=VIRTUAL, job_timeout_s=100.0))
    assert result.verdict.valid
    assert sorted(kind for _, kind, _ in result.events) == ["crash", "drop", "pause"]
    with pytest.raises(InvalidInputError, match="worker_crashes, poison 'crash', job_timeout_s"):
        run(Workload(jobs=10), faults, Setup(backend=VIRTUAL, mode="process", job_timeout_s=100))
    process = run(Workload(jobs=10), FaultPlan(redis_drops=(1.0,)),
                  Setup(backend=VIRTUAL, mode="process"))  # fmt: skip
    assert process.verdict.valid  # faults that do not depend on the pool kind run


# --- theory ------------------------------------------------------------------------------------


def _waits(c: int, rho: float, jobs: int, reps: int, service: object = None) -> list[float]:
    service = service or Exponential(mean_s=1.0)
    return [
        run(
            Workload(jobs=jobs, arrival=Poisson(rate_per_s=rho * c), service=service, seed=s),  # type: ignore[arg-type]
            setup=Setup(workers=c, backend=VIRTUAL),
        ).summary.wait_s.mean
        for s in range(1, reps + 1)
    ]


@pytest.mark.parametrize(
    ("c", "rho", "jobs"), [(1, 0.5, 20_000), (1, 0.9, 60_000), (4, 0.9, 40_000), (10, 0.9, 50_000)]
)
def test_mmc_mean_wait_is_erlang_c(c: int, rho: float, jobs: int) -> None:
    """10 replications: Erlang C's Wq is inside the replications' 99 % t-interval, and the
    interval is tight (within 15 % of Wq)."""
    mean, half = _band(_waits(c, rho, jobs, 10))
    wq = theory.mmc(rho * c, 1.0, c).wq
    assert abs(mean - wq) <= half, (mean, half, wq)
    assert half <= 0.15 * wq


def test_md1_waits_half_as_long_as_mm1() -> None:
    """Pollaczek-Khinchine at rho 0.8: M/D/1 Wq = 2.0, M/M/1 Wq = 4.0."""
    for service, scv in [(Fixed(seconds=1.0), 0.0), (Exponential(mean_s=1.0), 1.0)]:
        mean, half = _band(_waits(1, 0.8, 30_000, 10, service))
        wq = theory.mg1_wait(0.8, 1.0, scv_s=scv)
        assert abs(mean - wq) <= half, (scv, mean, half, wq)
        assert half <= 0.15 * wq


def test_priority_classes_wait_as_the_non_preemptive_formula_says() -> None:
    """M/M/10, lambda = 4 + 4 (priority 9 and 0), strict priority: 0.0682 and 0.3410."""
    expected = theory.priority_waits([4.0, 4.0], 1.0, 10)
    by_class: dict[int, list[float]] = {9: [], 0: []}
    for seed in range(1, 11):
        w = Workload(jobs=40_000, arrival=Poisson(rate_per_s=8.0), priorities={9: 1, 0: 1},
                     seed=seed)  # fmt: skip
        jobs = steady_state(run(w, setup=Setup(workers=10, backend=VIRTUAL)).jobs)
        for p, waits in by_class.items():
            waits.append(float(jobs.loc[jobs.priority == p, "wait_s"].mean()))
    for (p, waits), wq in zip(by_class.items(), expected, strict=True):
        mean, half = _band(waits)
        assert abs(mean - wq) <= half, (p, mean, half, wq)
        assert half <= 0.15 * wq


@pytest.mark.parametrize("policy", [RetryPolicy.immediate(), RetryPolicy(kind="full", base_s=1.0)])
def test_attempts_and_dead_letters_follow_the_retry_law(policy: RetryPolicy) -> None:
    p, r, n = 0.3, 3, 20_000
    w = Workload(jobs=n, arrival=Poisson(rate_per_s=2.0), fail_probability=p, max_retries=r,
                 seed=5)  # fmt: skip
    result = run(w, setup=Setup(workers=4, backend=VIRTUAL, retry=policy))
    s = result.summary
    assert s.valid and s.completed + s.failed == n
    q = theory.dead_letter_probability(p, r)
    assert abs(s.dead_letter_rate - q) <= theory.binomial_band(q, n)
    band = theory.mean_band(math.sqrt(theory.attempts_variance(p, r)), n)
    assert abs(s.attempts_per_job - theory.expected_attempts(p, r)) <= band
    attempts = result.attempts
    assert set(attempts.groupby("job_id")["number"].max()) <= set(range(1, r + 2))
    dead = result.jobs.loc[result.jobs.outcome == "failed", "attempts"]
    assert (dead == r + 1).all()


def test_littles_law_on_the_sample_path() -> None:
    """L from the engine's own count of jobs in the system (the event loop's running count,
    sampled on a fine grid: not the frame's timestamps), against lambda x W from the frame.
    Two priorities and retries, so the event loop runs, not the FIFO recursion."""
    w = Workload(jobs=50_000, arrival=Poisson(rate_per_s=7.0), priorities={0: 1, 9: 1},
                 fail_probability=0.1, seed=9)  # fmt: skip
    law = run(w, setup=Setup(workers=10, backend=VIRTUAL)).summary.littles_law
    assert abs(law.l_sampled - law.lambda_w) <= law.l_half_width
    assert abs(law.l_sampled - law.lambda_w) <= 0.01 * law.lambda_w


def test_slow_worker_runs_its_jobs_slower() -> None:
    w = Workload(jobs=200, arrival=AllAtOnce(), service=Fixed(seconds=1.0), seed=1)
    a = run(w, FaultPlan(slow_worker_factor=3.0), Setup(workers=2, backend=VIRTUAL)).attempts
    times = a.service_s.round(9).groupby(a.worker).unique()
    assert list(times["virtual-0"]) == [3.0] and list(times["virtual-1"]) == [1.0]


# --- conformance with the real queue -------------------------------------------------------


def _observed(result: RunResult) -> tuple[list[tuple[str, int]], dict[str, int], set[str]]:
    a = result.attempts.sort_values("started", kind="stable")
    order = list(zip(a.job_id, a.number.astype(int), strict=True))
    attempts = dict(zip(result.jobs.job_id, result.jobs.attempts.astype(int), strict=True))
    dead = set(result.jobs.loc[result.jobs.outcome == "failed", "job_id"])
    return order, attempts, dead


BURSTS = tuple(6.0 * b + 0.25 * k for b in range(3) for k in range(4))


@pytest.mark.parametrize("workers", [1, 2])
def test_conformance_with_the_real_queue(workers: int, redis_server: LocalRedis) -> None:
    """Three bursts of four jobs (0.25 model s apart, 6 s between bursts), 1 s of work,
    three priorities, poison jobs, immediate retries. Every burst is queued before its
    first job ends and drained before the next begins, and no two events on different
    workers are closer than 0.25 model s (110 ms wall: 75 ms once reordered a run on a
    loaded machine), so neither the queue's own cost nor wall timing can reorder them (a
    steady stream would: that cost accumulates). Same service order, attempts per job and
    dead letters on the virtual engine, the embedded fakeredis and a real redis-server."""
    w = Workload(jobs=len(BURSTS), arrival=Replay(times_s=BURSTS), service=Fixed(seconds=1.0),
                 priorities={0: 1, 5: 1, 9: 1}, max_retries=1, time_scale=0.45,
                 seed=2)  # fmt: skip
    faults = FaultPlan(poison={1: "fail", 4: "fail_once", 9: "fail"})
    virtual = _observed(run(w, faults, Setup(workers=workers, backend=VIRTUAL)))
    assert virtual[2] == {"j000001", "j000009"}
    assert len({p.priority for p in w.plan()}) == 3
    firsts = [job for job, number in virtual[0] if number == 1]
    assert firsts != sorted(firsts)  # priorities reorder the service, so order is tested
    for backend in ("embedded", redis_server.url):
        assert _observed(run(w, faults, Setup(workers=workers, backend=backend))) == virtual
