"""A shared outage (``FaultPlan(outages=...)``) on the virtual backend, pinned to the real
queue: every attempt that starts inside the window fails, retried by the setup's policy."""

from __future__ import annotations

from typing import Any

import pytest

from jobsim import theory
from jobsim.errors import InvalidInputError
from jobsim.localredis import LocalRedis
from jobsim.retry import Kind, RetryPolicy
from jobsim.sim import AllAtOnce, FaultPlan, Fixed, Outage, Replay, RunResult, Setup, Workload, run
from jobsim.sim.outage import outage_schedule, twin_outage
from jobsim.sim.replicas import t_interval, t_quantile_975

# On the twin: arrivals 0, 0.05, 0.5 and 1.2 model s, instant service; with exponential
# backoff from 0.2 s the attempts start at 0/0.2/0.6/1.4, 0.05/0.25/0.65/1.45, 0.5/0.7/1.1
# and 1.2, so the 1 s outage fails 3, 3, 2 and 0 of them.
WORKLOAD = Workload(jobs=4, arrival=Replay(times_s=(0.0, 0.05, 0.5, 1.2)),
                    service=Fixed(seconds=0.0), max_retries=8, time_scale=1.0,
                    seed=2)  # fmt: skip
FAULTS = FaultPlan(outages=(Outage(end_s=1.0),))
# Against the real queue: three jobs at once on one worker (model s = wall s), each wave of
# retries due together (0, 0.2, 0.6 and 1.4 s after the start, ms apart on the real queue,
# in the order they failed). The outage ends at 1.2 s, 0.6 s after the third wave is due (a
# loaded machine can only delay it) and 0.2 s before the fourth (which never starts early).
AT_ONCE = Workload(jobs=3, arrival=AllAtOnce(), service=Fixed(seconds=0.0), max_retries=8,
                   time_scale=1.0, seed=2)  # fmt: skip
LONGER = FaultPlan(outages=(Outage(end_s=1.2),))
POLICY = RetryPolicy(kind="exponential", base_s=0.2, cap_s=1.6)


def _observed(result: RunResult) -> dict[str, Any]:
    a = result.attempts.sort_values("started", kind="stable")
    return {
        "order": list(zip(a.job_id, a.number.astype(int), a.outcome, strict=True)),
        "attempts": dict(zip(result.jobs.job_id, result.jobs.attempts.astype(int), strict=True)),
        "errors": sorted(set(a.error.dropna())),
        "valid": result.verdict.valid,
    }


def test_an_outage_fails_exactly_the_attempts_that_start_inside_it_on_the_twin() -> None:
    """The twin's attempt times are the policy's own schedule, and only those before 1 s fail."""
    result = run(WORKLOAD, FAULTS, Setup(workers=1, retry=POLICY, backend="virtual"))
    starts = result.attempts.groupby("job_id")["started"].apply(lambda s: [round(x, 6) for x in s])
    assert starts.to_dict() == {
        "j000000": [0.0, 0.2, 0.6, 1.4],
        "j000001": [0.05, 0.25, 0.65, 1.45],
        "j000002": [0.5, 0.7, 1.1],
        "j000003": [1.2],
    }
    failed = result.attempts[result.attempts["outcome"] == "retry"]
    assert (failed["started"] < 1.0).all() and len(failed) == 3 + 3 + 2
    assert result.summary.theory.note  # the queueing formulas are left out: an outage breaks them


def test_outage_conformance_with_the_real_queue(redis_server: LocalRedis) -> None:
    """Same order, outcomes, attempts and errors on the twin, fakeredis and a redis-server."""
    virtual = _observed(run(AT_ONCE, LONGER, Setup(workers=1, retry=POLICY, backend="virtual")))
    assert virtual["attempts"] == {"j000000": 4, "j000001": 4, "j000002": 4}
    assert virtual["order"][:4] == [("j000000", 1, "retry"), ("j000001", 1, "retry"),
                                    ("j000002", 1, "retry"), ("j000000", 2, "retry")]  # fmt: skip
    assert virtual["errors"] == [f"SimulatedFailure: dependency down (outage) on attempt {n}"
                                 for n in (1, 2, 3)]  # fmt: skip
    for backend in ("embedded", redis_server.url):
        real = _observed(run(AT_ONCE, LONGER, Setup(workers=1, retry=POLICY, backend=backend)))
        assert real == virtual, backend


@pytest.mark.parametrize(("start", "end"), [(1.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_an_outage_needs_a_window(start: float, end: float) -> None:
    with pytest.raises(InvalidInputError, match="outage"):
        Outage(start_s=start, end_s=end)


@pytest.mark.parametrize("kind", ["fixed", "exponential", "full", "equal"])
def test_outage_attempts_formula_matches_the_policy_alone(kind: Kind) -> None:
    """E[A] = 1 + sum P(T_m < outage): exact for constant delays; for jittered ones within
    four standard errors of 20,000 seeded schedules of the policy alone."""
    policy = RetryPolicy(kind=kind, base_s=0.2, cap_s=1.6)
    expected = theory.outage_attempts(kind, outage_s=1.0, base_s=0.2, cap_s=1.6, max_retries=8)
    assert expected is not None
    plan = outage_schedule(policy, jobs=20_000, outage_s=1.0, max_retries=8, seed=3)
    per_job = plan.groupby("job")["number"].max()
    if kind in ("fixed", "exponential"):
        assert expected == {"fixed": 6.0, "exponential": 4.0}[kind] == per_job.mean()
    else:
        band = theory.mean_band(float(per_job.std()), len(per_job))
        assert abs(per_job.mean() - expected) <= band
    # the retry limit caps it, and a near-instant outage fails the first attempt only
    assert theory.outage_attempts(kind, outage_s=1.0, base_s=0.2, cap_s=1.6, max_retries=1) == 2
    tiny = theory.outage_attempts(kind, outage_s=1e-9, base_s=0.2, cap_s=1.6, max_retries=8)
    assert tiny == pytest.approx(2.0, abs=1e-6)


def test_outage_attempts_refuses_what_it_cannot_answer() -> None:
    assert theory.outage_attempts("decorrelated", outage_s=1, base_s=0.2, cap_s=1.6,
                                  max_retries=3) is None  # fmt: skip
    for bad in ({"outage_s": 0.0}, {"max_retries": -1}, {"cap_s": 0.1}):
        args: dict[str, Any] = {"outage_s": 1.0, "base_s": 0.2, "cap_s": 1.6, "max_retries": 3}
        with pytest.raises(InvalidInputError):
            theory.outage_attempts("full", **(args | bad))


def test_the_twin_outage_is_the_policys_schedule_and_agrees_with_the_formula() -> None:
    """Without jitter every retry of sixty jobs starts at 0.2, 0.6 or 1.4 s (a peak of 60);
    with full jitter the mean attempts per job of ten seeded runs is within four standard
    errors of outage_attempts, and the peak is lower."""
    plain = twin_outage(RetryPolicy(kind="exponential", base_s=0.2, cap_s=1.6), seed=1)
    retries = plain.attempts.loc[plain.attempts["number"] > 1, "started"]
    assert sorted(set(retries.round(9))) == [0.2, 0.6, 1.4] and plain.retry_peak(0.025) == 60
    assert plain.attempts_per_job == 4.0 and plain.verdict.valid
    full = RetryPolicy(kind="full", base_s=0.2, cap_s=1.6)
    runs = [twin_outage(full, seed=s) for s in range(10)]
    interval = t_interval([r.attempts_per_job for r in runs])
    expected = theory.outage_attempts("full", outage_s=1.0, base_s=0.2, cap_s=1.6, max_retries=8)
    assert expected is not None
    assert abs(interval.mean - expected) <= 4 * interval.half_width / t_quantile_975(9)
    assert max(r.retry_peak(0.025) for r in runs) < 60
