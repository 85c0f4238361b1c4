"""E10 on the twin: every delivery lost with a crashed worker is given back no earlier than
its lease deadline and no later than the next DEQUEUE, the checker counts one duplicate per
job that lost a delivery, and the mean give-back time agrees with the formula."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from jobsim.errors import InvalidInputError
from jobsim.sim import Constant, Exponential, FaultPlan, Poisson, Setup, Workload, run
from jobsim.sim.recovery import (
    expected_give_back_s,
    give_backs,
    outran_lease,
    recovery_sweep,
    without_heartbeats,
)
from jobsim.sim.replicas import t_quantile_975

LOAD = Workload(
    jobs=1_000,
    arrival=Poisson(rate_per_s=3.0),
    service=Exponential(mean_s=1.0),
    time_scale=1.0,
    seed=7,
)


def _crashed_run(lease_s: float, seed: int = 7, crashes: int = 8):  # type: ignore[no-untyped-def]
    workload = replace(LOAD, seed=seed)
    faults = FaultPlan(worker_crashes=crashes, seed=seed)
    return run(workload, faults, Setup(workers=4, lease_s=lease_s, backend="virtual"))


@pytest.mark.parametrize("lease_s", [0.6, 2.5, 10.0])
@pytest.mark.parametrize("seed", [1, 2])
def test_every_crashed_delivery_is_given_back_between_its_deadline_and_the_next_dequeue(
    lease_s: float, seed: int
) -> None:
    """Exact on the twin, crash by crash: heartbeats every L/3 put the deadline 2L/3 to L
    after the death, and the give-back waits at most for the next DEQUEUE."""
    result = _crashed_run(lease_s, seed)
    frame = give_backs(result)
    assert len(frame) == 8
    assert frame["exact"].all()
    ahead = frame["deadline_s"] - frame["died_s"]
    assert (ahead > 2 * lease_s / 3 - 1e-9).all() and (ahead <= lease_s + 1e-9).all()
    assert (frame["given_back_s"] >= frame["deadline_s"]).all()
    assert (frame["restarted_s"] >= frame["given_back_s"]).all()
    # the checker: one duplicate per job that lost a delivery, nothing lost
    assert result.verdict.duplicates == frame["job_id"].nunique()
    assert result.verdict.lost == 0


def test_the_check_fails_for_a_give_back_before_the_deadline_or_after_the_next_dequeue() -> None:
    """The exact check can fail: move one give-back 1 ms before its deadline, another past
    the next DEQUEUE, and each is flagged."""
    result = _crashed_run(2.5)
    frame = give_backs(result)
    attempts = result.attempts.copy()
    first, second = frame.iloc[0], frame.iloc[1]
    for row, ended in ((first, first.deadline_s - 1e-3), (second, second.next_dequeue_s + 1e-3)):
        mine = (attempts["job_id"] == row.job_id) & (attempts["number"] == row.number)
        attempts.loc[mine, "ended"] = ended
    broken = give_backs(replace(result, attempts=attempts))
    assert list(broken["exact"]) == [False, False] + [True] * (len(frame) - 2)


def test_give_back_times_are_checked_on_the_twin_only() -> None:
    result = _crashed_run(2.5)
    real = replace(result, setup=replace(result.setup, backend="embedded"))
    with pytest.raises(InvalidInputError, match="virtual"):
        give_backs(real)
    with pytest.raises(InvalidInputError, match="Poisson"):
        expected_give_back_s(replace(LOAD, arrival=Constant(rate_per_s=3.0)), result.setup)


@pytest.mark.parametrize("lease_s", [2.5, 10.0])
def test_the_mean_give_back_over_replications_agrees_with_the_formula(lease_s: float) -> None:
    """Sixteen seeded runs of eight crashes: the mean give-back time is within four standard
    errors of lease_give_back_s (length-biased service, uniform heartbeat phase, Erlang C)."""
    (row,) = recovery_sweep(LOAD, [lease_s], crashes=8, runs=16).itertuples()
    assert row.crashed == row.exact == 16 * 8
    assert row.duplicates == row.crashed_jobs and row.lost == 0
    se = row.given_back.half_width / t_quantile_975(row.runs - 1)
    assert abs(row.given_back.mean - row.theory_s) <= 4 * se
    assert row.restart.mean >= row.given_back.mean  # the next start waits in the queue too


def test_attempts_longer_than_the_lease_are_counted_from_the_log() -> None:
    """With heartbeats a job may outrun its lease without a duplicate; the count is measured
    (service_s > lease in the attempt log) and near N e^{-L/m} within the binomial band."""
    result = _crashed_run(0.6, crashes=0)
    done = result.attempts[result.attempts["outcome"] == "completed"]
    assert outran_lease(result) == int((done["service_s"] > 0.6).sum()) > 0
    assert result.verdict.duplicates == 0
    expected, band = without_heartbeats(LOAD.jobs, 0.6, 1.0)
    assert expected == pytest.approx(1000 * math.exp(-0.6))
    assert abs(outran_lease(result) - expected) <= band
