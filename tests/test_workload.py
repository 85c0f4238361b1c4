"""jobsim.sim.workload: arrival processes, service distributions and the seeded plan.

Statistical checks use bands of 4 standard errors derived from the distribution itself
(a false alarm about once in 16,000 runs), on fixed seeds, so they are deterministic.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from jobsim.errors import InvalidInputError
from jobsim.sim.workload import (
    AllAtOnce,
    Bimodal,
    Bursty,
    Constant,
    Fixed,
    Lognormal,
    Poisson,
    Replay,
    Workload,
)
from jobsim.theory import binomial_band

RNG = np.random.default_rng

# --- arrival processes --------------------------------------------------------------------


def test_constant_arrivals_are_exactly_one_gap_apart() -> None:
    """Constant(rate) arrives at 1/rate, 2/rate, ... and claims scv 0."""
    times = Constant(rate_per_s=4.0).times(5, RNG(0))
    assert times.tolist() == [0.25, 0.5, 0.75, 1.0, 1.25]
    assert Constant(rate_per_s=4.0).scv == 0.0


def test_poisson_gaps_have_the_exponential_mean_and_scv() -> None:
    """Poisson gaps: mean 1/rate within 4 SE (SD = mean), and the process claims scv 1."""
    n, rate = 40_000, 2.5
    gaps = np.diff(np.concatenate([[0.0], Poisson(rate_per_s=rate).times(n, RNG(3))]))
    assert np.all(gaps > 0)
    assert abs(gaps.mean() - 1 / rate) <= 4 * (1 / rate) / math.sqrt(n)
    assert Poisson(rate_per_s=rate).scv == 1.0


def test_bursty_arrivals_fall_only_inside_on_periods() -> None:
    """Every bursty arrival lies in an on-window [k(on+off), k(on+off)+on)."""
    b = Bursty(on_rate_per_s=20.0, on_s=2.0, off_s=3.0)
    times = b.times(5_000, RNG(1))
    assert np.all(np.diff(times) >= 0)
    assert np.all(np.mod(times, b.on_s + b.off_s) < b.on_s)
    assert len(np.unique(np.floor(times / (b.on_s + b.off_s)))) > 100  # many cycles covered


def test_bursty_long_run_rate_is_the_on_rate_times_the_on_share() -> None:
    """rate_per_s = on_rate * on/(on+off); scv is NaN because no formula takes on/off."""
    b = Bursty(on_rate_per_s=12.0, on_s=1.0, off_s=3.0)
    assert b.rate_per_s == 3.0
    assert math.isnan(b.scv)
    n = 40_000
    times = b.times(n, RNG(2))
    # Time "on" is a Gamma(n, 1/on_rate) sum: relative SD 1/sqrt(n); the off-time adds a
    # deterministic share, so the measured rate is within 4/sqrt(n) of 3 (plus one cycle).
    measured = n / times[-1]
    assert abs(measured - 3.0) / 3.0 <= 4 / math.sqrt(n) + (b.on_s + b.off_s) * 3.0 / n


def test_replay_rate_and_scv_are_those_of_the_trace() -> None:
    """A trace at 1, 2, 4 s: rate 3/4 per s; gaps 1, 1, 2 have scv var/mean^2 = 2/16."""
    trace = Replay(times_s=(4.0, 1.0, 2.0))
    assert trace.rate_per_s == 0.75
    assert trace.scv == pytest.approx((2 / 9) / (16 / 9))


def test_replay_of_an_evenly_spaced_trace_has_scv_zero() -> None:
    """Equal gaps: no variability."""
    assert Replay(times_s=(1.0, 2.0, 3.0, 4.0)).scv == 0.0


def test_replay_of_an_empty_or_instant_trace_has_an_infinite_rate() -> None:
    """No span to divide by: the rate is infinite (like AllAtOnce), not a ZeroDivisionError."""
    assert Replay(times_s=()).rate_per_s == math.inf
    assert Replay(times_s=(0.0, 0.0)).rate_per_s == math.inf


def test_replay_takes_the_first_n_trace_times_sorted() -> None:
    """times(n) uses the first n entries of the trace, then sorts them."""
    assert Replay(times_s=(5.0, 3.0, 9.0, 1.0)).times(3, RNG(0)).tolist() == [3.0, 5.0, 9.0]


def test_a_workload_with_more_jobs_than_the_trace_is_refused_by_name() -> None:
    """Asking a 2-arrival trace for 3 jobs raises InvalidInputError on field 'jobs'."""
    w = Workload(jobs=3, arrival=Replay(times_s=(1.0, 2.0)))
    with pytest.raises(InvalidInputError, match="fewer than jobs=3") as info:
        w.plan()
    assert info.value.field == "jobs" and info.value.value == 3


def test_all_at_once_is_a_backlog_at_time_zero_with_infinite_rate() -> None:
    """AllAtOnce: every arrival at 0; the rate is infinite and the scv undefined."""
    a = AllAtOnce()
    assert a.times(3, RNG(0)).tolist() == [0.0, 0.0, 0.0]
    assert a.rate_per_s == math.inf and math.isnan(a.scv)


# --- service distributions ------------------------------------------------------------------


def test_fixed_service_is_exactly_its_seconds() -> None:
    """Fixed draws are the constant itself, with scv 0."""
    f = Fixed(seconds=0.3)
    assert f.draw(4, RNG(0)).tolist() == [0.3] * 4
    assert (f.mean_s, f.scv) == (0.3, 0.0)


def test_lognormal_log_draws_are_normal_with_the_parameters_its_mean_and_scv_imply() -> None:
    """log S ~ N(ln m - s2/2, s2), s2 = ln(1 + scv): both moments within 4 SE."""
    n, mean_s, scv = 50_000, 2.0, 4.0
    logs = np.log(Lognormal(mean_s=mean_s, scv=scv).draw(n, RNG(4)))
    s2 = math.log1p(scv)
    assert abs(logs.mean() - (math.log(mean_s) - s2 / 2)) <= 4 * math.sqrt(s2 / n)
    assert abs(logs.var(ddof=1) - s2) <= 4 * s2 * math.sqrt(2 / (n - 1))


def test_bimodal_mean_and_scv_are_the_two_point_distribution_moments() -> None:
    """Mean and scv equal the moments computed directly from the two values and weights."""
    b = Bimodal(fast_s=1.0, slow_s=11.0, p_slow=0.1)
    mean = 0.9 * 1.0 + 0.1 * 11.0
    var = 0.9 * (1.0 - mean) ** 2 + 0.1 * (11.0 - mean) ** 2
    assert b.mean_s == pytest.approx(mean)
    assert b.scv == pytest.approx(var / mean**2)


def test_bimodal_draws_only_its_two_values_at_the_stated_share() -> None:
    """Every draw is fast_s or slow_s; the slow share is p_slow within a binomial band."""
    n = 20_000
    draws = Bimodal(fast_s=0.5, slow_s=5.5, p_slow=0.1).draw(n, RNG(6))
    assert set(np.unique(draws)) == {0.5, 5.5}
    assert abs((draws == 5.5).mean() - 0.1) <= binomial_band(0.1, n)


# --- the workload and its plan ----------------------------------------------------------------


def test_the_plan_lists_every_job_once_in_arrival_order() -> None:
    """Indexes 0..n-1, non-decreasing arrivals, and the workload's failure chance on each."""
    w = Workload(jobs=200, fail_probability=0.25, seed=3)
    plan = w.plan()
    assert [j.index for j in plan] == list(range(200))
    assert all(a.arrival_s <= b.arrival_s for a, b in itertools.pairwise(plan))
    assert {j.fail_probability for j in plan} == {0.25}
    assert all(j.service_s > 0 for j in plan)


def test_priority_shares_are_normalised_and_drawn_at_their_share() -> None:
    """Shares 1:3 give priority 9 to a quarter of the jobs, within a binomial band."""
    n = 8_000
    plan = Workload(jobs=n, priorities={9: 1.0, 0: 3.0}, seed=5).plan()
    assert {j.priority for j in plan} == {0, 9}
    share_9 = sum(j.priority == 9 for j in plan) / n
    assert abs(share_9 - 0.25) <= binomial_band(0.25, n)


def test_a_zero_share_priority_never_appears() -> None:
    """A priority with share 0 is allowed and simply never drawn."""
    plan = Workload(jobs=500, priorities={9: 0.0, 4: 1.0}, seed=1).plan()
    assert {j.priority for j in plan} == {4}


def test_changing_only_the_service_leaves_arrivals_and_priorities_unchanged() -> None:
    """Arrivals, service and priority each have their own stream: swapping one keeps the rest."""
    base = Workload(jobs=300, priorities={0: 1, 9: 1}, seed=8)
    other = Workload(**{**base.__dict__, "service": Fixed(seconds=1.0)})
    a, b = base.plan(), other.plan()
    assert [j.arrival_s for j in a] == [j.arrival_s for j in b]
    assert [j.priority for j in a] == [j.priority for j in b]
    assert [j.service_s for j in a] != [j.service_s for j in b]


def test_streams_are_reproducible_and_independent() -> None:
    """streams(k) gives the same k generators for a seed, each drawing differently."""
    w = Workload(seed=42)
    first = [g.random() for g in w.streams(4)]
    assert first == [g.random() for g in w.streams(4)]
    assert len(set(first)) == 4
    assert first[:2] == [g.random() for g in w.streams(2)]  # prefix-stable: 0, 1 keep their use


def test_class_rates_split_the_arrival_rate_by_share_highest_priority_first() -> None:
    """(priority, rate) pairs from 9 down, summing to the arrival rate."""
    w = Workload(arrival=Poisson(rate_per_s=6.0), priorities={0: 1.0, 9: 2.0, 5: 3.0})
    assert w.class_rates() == [(9, 2.0), (5, 3.0), (0, 1.0)]
    assert w.arrival_rate_per_s == 6.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"jobs": 0}, "jobs"),
        ({"fail_probability": -0.1}, "fail_probability"),
        ({"fail_probability": 1.5}, "fail_probability"),
        ({"fail_probability": math.nan}, "fail_probability"),
        ({"time_scale": 0.0}, "time_scale"),
        ({"time_scale": math.nan}, "time_scale"),
        ({"priorities": {}}, "priorities"),
        ({"priorities": {10: 1.0}}, "priorities"),
        ({"priorities": {-1: 1.0}}, "priorities"),
        ({"priorities": {0: -1.0}}, "priorities"),
    ],
)
def test_an_invalid_workload_is_refused_naming_its_field(kwargs: dict, field: str) -> None:
    """Each out-of-range field raises InvalidInputError carrying that field's name."""
    with pytest.raises(InvalidInputError) as info:
        Workload(**kwargs)
    assert info.value.field == field


def test_priorities_whose_shares_sum_to_zero_are_refused() -> None:
    """Shares that are all zero describe no mix: InvalidInputError at construction."""
    with pytest.raises(InvalidInputError):
        Workload(jobs=10, priorities={0: 0.0, 9: 0.0})


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_a_workload_with_a_non_positive_arrival_rate_is_refused(rate: float) -> None:
    """Arrivals at rate <= 0 never come: InvalidInputError, not an arithmetic error."""
    with pytest.raises(InvalidInputError):
        Workload(jobs=10, arrival=Poisson(rate_per_s=rate)).plan()


def test_a_negative_service_scv_is_refused() -> None:
    """An SCV is a variance ratio and cannot be negative: InvalidInputError."""
    with pytest.raises(InvalidInputError):
        Workload(jobs=10, service=Lognormal(mean_s=1.0, scv=-1.0)).plan()
