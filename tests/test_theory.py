"""The theory the simulator is measured against: every reference value in docs/experiments.md,
the invariants the formulas must keep, and the inputs they refuse.

Pure math: no Redis, no fixtures.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from jobsim.errors import InvalidInputError
from jobsim.retry import Kind, RetryPolicy
from jobsim.theory import (
    MMc,
    allen_cunneen_wait,
    attempts_variance,
    binomial_band,
    dead_letter_probability,
    effective_arrival_rate,
    erlang_b,
    erlang_c,
    expected_attempts,
    expected_backoff_s,
    lease_give_back_s,
    littles_law_l,
    mean_band,
    mg1_wait,
    mmc,
    priority_waits,
    staffing,
    unstable_reason,
)


def matches_printed(value: float, printed: str) -> bool:
    """True if ``value`` rounds to ``printed`` at the number of decimals printed."""
    decimals = len(printed.partition(".")[2])
    return abs(value - float(printed)) <= 0.5 * 10.0**-decimals + 1e-12


# The M/M/c table of docs/experiments.md, as printed: c, lam, mu, rho, C(c,a), Wq.
MMC_TABLE = [
    (1, 0.8, 1.0, "0.8", "0.8", "4.0"),
    (3, 0.2, 0.1, "0.667", "0.4444", "4.4444"),
    (4, 0.2, 0.1, "0.5", "0.1739", "0.8696"),
    (4, 3.2, 1.0, "0.8", "0.5964", "0.7455"),
    (10, 8.0, 1.0, "0.8", "0.40918", "0.20459"),
    (10, 9.0, 1.0, "0.9", "0.66873", "0.66873"),
    (50, 45.0, 1.0, "0.9", "0.36386", "0.07277"),
]


@pytest.mark.parametrize(("c", "lam", "mu", "rho", "p_wait", "wq"), MMC_TABLE)
def test_mmc_matches_every_reference_row(
    c: int, lam: float, mu: float, rho: str, p_wait: str, wq: str
) -> None:
    """Each M/M/c row of docs/experiments.md is reproduced to the precision it is printed with."""
    m = mmc(lam, mu, c)
    assert matches_printed(m.rho, rho)
    assert matches_printed(m.p_wait, p_wait)
    assert matches_printed(erlang_c(c, lam / mu), p_wait)
    assert matches_printed(m.wq, wq)


@pytest.mark.parametrize("c", range(0, 21))
@pytest.mark.parametrize("a", [0.0, 0.3, 2.0, 7.5, 15.0])
def test_erlang_b_and_c_agree_with_the_factorial_formulas(c: int, a: float) -> None:
    """The stable recursion gives the textbook factorial-sum values where those are safe."""
    terms = [a**k / math.factorial(k) for k in range(c + 1)]
    assert erlang_b(c, a) == pytest.approx(terms[-1] / math.fsum(terms), rel=1e-12, abs=1e-15)
    if c >= 1 and a < c:
        tail = terms[-1] * c / (c - a)
        expected_c = tail / (math.fsum(terms[:-1]) + tail)
        assert erlang_c(c, a) == pytest.approx(expected_c, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("a", [0.1, 0.8, 3.2, 8.0, 45.0])
def test_erlang_c_is_a_probability_that_falls_as_workers_are_added(a: float) -> None:
    """At a fixed load, C(c,a) stays in [0, 1] and strictly decreases with every added worker."""
    values = [erlang_c(c, a) for c in range(math.floor(a) + 1, math.floor(a) + 40)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(later < earlier for earlier, later in itertools.pairwise(values))


@pytest.mark.parametrize(("lam", "mu", "c"), [(0.0, 1.0, 1), (0.8, 1.0, 1), (8.0, 1.0, 10)])
def test_mmc_results_obey_littles_law(lam: float, mu: float, c: int) -> None:
    """L = lam*W and Lq = lam*Wq, and the two differ by the offered load lam/mu."""
    m = mmc(lam, mu, c)
    assert m.l == littles_law_l(lam, m.w)
    assert m.lq == littles_law_l(lam, m.wq)
    assert m.l == pytest.approx(m.lq + lam / mu, rel=1e-12)
    assert m.w == pytest.approx(m.wq + 1 / mu, rel=1e-12)


def test_mmc_result_is_frozen() -> None:
    """The results are a value object: nothing can change them after the fact."""
    m = mmc(8.0, 1.0, 10)
    assert isinstance(m, MMc)
    with pytest.raises(AttributeError):
        m.wq = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(("lam", "mu", "c"), [(0.8, 1.0, 1), (8.0, 1.0, 10), (45.0, 1.0, 50)])
def test_wait_quantile_inverts_the_wait_tail(lam: float, mu: float, c: int) -> None:
    """P(Wq > quantile(q)) = 1 - q wherever jobs wait, and the quantile is 0 where they do not."""
    m = mmc(lam, mu, c)
    assert m.p_wait_longer_than(0.0) == m.p_wait
    quantiles = [m.wait_quantile(q / 100) for q in range(100)]
    assert all(later >= earlier for earlier, later in itertools.pairwise(quantiles))
    for q in (i / 100 for i in range(100)):
        t = m.wait_quantile(q)
        if q <= 1 - m.p_wait:
            assert t == 0.0
        else:
            assert m.p_wait_longer_than(t) == pytest.approx(1 - q, rel=1e-9)


def test_constant_service_waits_half_as_long_as_exponential() -> None:
    """Pollaczek-Khinchine at rho = 0.8: M/D/1 waits 2.0, M/M/1 waits 4.0 (= Erlang C)."""
    assert mg1_wait(0.8, 1.0, scv_s=0.0) == pytest.approx(2.0, rel=1e-12)
    assert mg1_wait(0.8, 1.0, scv_s=1.0) == pytest.approx(4.0, rel=1e-12)
    assert mg1_wait(0.8, 1.0, scv_s=1.0) == pytest.approx(mmc(0.8, 1.0, 1).wq, rel=1e-12)


def test_allen_cunneen_is_exact_for_poisson_exponential_and_scales_with_variability() -> None:
    """With both SCVs 1 it is Erlang C; it scales linearly with (scv_a + scv_s)/2."""
    exact = mmc(8.0, 1.0, 10).wq
    assert allen_cunneen_wait(8.0, 1.0, 10, scv_a=1.0, scv_s=1.0) == pytest.approx(exact)
    assert allen_cunneen_wait(8.0, 1.0, 10, scv_a=1.0, scv_s=0.0) == pytest.approx(exact / 2)
    assert allen_cunneen_wait(8.0, 1.0, 10, scv_a=1.0, scv_s=4.0) == pytest.approx(exact * 2.5)


def test_priority_example_matches_reference_and_conserves_the_fcfs_wait() -> None:
    """M/M/10 with 4+4 jobs/s: waits 0.0682 and 0.3410, whose mean is the FCFS Wq 0.20459."""
    high, low = priority_waits([4.0, 4.0], 1.0, 10)
    assert matches_printed(high, "0.0682")
    assert matches_printed(low, "0.3410")
    weighted = (4.0 * high + 4.0 * low) / 8.0
    assert matches_printed(weighted, "0.20459")
    assert weighted == pytest.approx(mmc(8.0, 1.0, 10).wq, rel=1e-12)


@pytest.mark.parametrize(
    ("lams", "mu", "c"),
    [
        ([0.8], 1.0, 1),
        ([1.0, 2.0, 3.0], 1.0, 7),
        ([0.0, 0.05, 0.1], 0.1, 2),
        ([40.0, 5.0], 1.0, 50),
    ],
)
def test_priority_only_redistributes_waiting(lams: list[float], mu: float, c: int) -> None:
    """For any split, the rate-weighted mean of the class waits equals the FCFS Wq."""
    waits = priority_waits(lams, mu, c)
    assert all(later >= earlier for earlier, later in itertools.pairwise(waits))
    weighted = sum(lam * w for lam, w in zip(lams, waits, strict=True)) / sum(lams)
    assert weighted == pytest.approx(mmc(sum(lams), mu, c).wq, rel=1e-12)


def test_retry_example_matches_reference() -> None:
    """p = 0.3, r = 3: 1.417 attempts per job and 0.0081 of jobs dead-lettered."""
    assert matches_printed(expected_attempts(0.3, 3), "1.417")
    assert matches_printed(dead_letter_probability(0.3, 3), "0.0081")


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("r", [0, 1, 3, 10])
def test_attempt_moments_match_the_truncated_geometric_distribution(p: float, r: int) -> None:
    """Mean, variance and DLQ share equal those of the enumerated distribution of attempts."""
    n = r + 1
    probs = {k: p ** (k - 1) * (1 - p) for k in range(1, n)}
    probs[n] = p ** (n - 1)
    mean = math.fsum(k * q for k, q in probs.items())
    variance = math.fsum((k - mean) ** 2 * q for k, q in probs.items())
    assert expected_attempts(p, r) == pytest.approx(mean, rel=1e-9)
    assert attempts_variance(p, r) == pytest.approx(variance, rel=1e-9, abs=1e-12)
    assert dead_letter_probability(p, r) == pytest.approx(p**n, rel=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_unlimited_retries_are_the_limit_of_many_retries(p: float) -> None:
    """r = None gives 1/(1-p) attempts, variance p/(1-p)^2 and no dead letters."""
    assert expected_attempts(p, None) == pytest.approx(1 / (1 - p))
    assert expected_attempts(p, 2000) == pytest.approx(expected_attempts(p, None), rel=1e-9)
    assert attempts_variance(p, None) == pytest.approx(p / (1 - p) ** 2)
    assert attempts_variance(p, 2000) == pytest.approx(attempts_variance(p, None), rel=1e-6)
    assert dead_letter_probability(p, None) == 0.0


def test_immediate_unlimited_retries_make_the_reference_queue_unstable_at_p_0_2() -> None:
    """Jackson: c=10, mu=1, lam=8 is stable at p=0.19 and unstable from p=0.2 on."""
    assert effective_arrival_rate(8.0, 0.3, 3) == pytest.approx(8.0 * (1 - 0.3**4) / 0.7)
    assert mmc(effective_arrival_rate(8.0, 0.19, None), 1.0, 10).rho < 1
    for p in (0.2, 0.25):
        unstable = mmc(effective_arrival_rate(8.0, p, None), 1.0, 10)
        assert not unstable.applies and unstable.reason.startswith("unstable")


def test_staffing_matches_reference_and_is_the_smallest_count() -> None:
    """a = 8 needs c = 12 for P(wait) <= 0.2, and 11 workers would not do."""
    assert staffing(8.0, 1.0, max_p_wait=0.2) == 12
    assert staffing(0.8, 0.1, max_p_wait=0.2) == 12
    assert erlang_c(11, 8.0) > 0.2 >= erlang_c(12, 8.0)
    assert staffing(0.0, 1.0, max_p_wait=0.01) == 1
    assert staffing(8.0, 1.0, max_p_wait=1.0) == 9


def test_bands_have_the_documented_half_widths() -> None:
    """4 standard errors by default: binomial sqrt(q(1-q)/n), mean sd/sqrt(n)."""
    assert binomial_band(0.5, 100) == pytest.approx(0.2)
    assert binomial_band(0.5, 100, k=2.0) == pytest.approx(0.1)
    assert binomial_band(0.0, 10) == 0.0
    assert mean_band(2.0, 16) == pytest.approx(2.0)
    assert mean_band(2.0, 16, k=1.0) == pytest.approx(0.5)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 12])
def test_backoff_means_follow_the_retry_policy(n: int) -> None:
    """The means match RetryPolicy's ceiling exactly, and its seeded draws within a 4-sigma band."""
    base_s, cap_s = 0.1, 2.0
    ceiling = RetryPolicy(kind="exponential", base_s=base_s, cap_s=cap_s).exponential_s(n)
    assert expected_backoff_s("fixed", n, base_s=base_s, cap_s=cap_s) == base_s
    assert expected_backoff_s("exponential", n, base_s=base_s, cap_s=cap_s) == ceiling
    assert expected_backoff_s("decorrelated", n, base_s=base_s, cap_s=cap_s) is None
    draws = 20_000
    jittered: tuple[tuple[Kind, float], ...] = (("full", ceiling), ("equal", ceiling / 2))
    for kind, width in jittered:
        policy = RetryPolicy(kind=kind, base_s=base_s, cap_s=cap_s)
        rng = random.Random(n)
        sample_mean = sum(policy.delay_s(n, rng=rng) for _ in range(draws)) / draws
        expected = expected_backoff_s(kind, n, base_s=base_s, cap_s=cap_s)
        assert expected is not None
        assert abs(sample_mean - expected) <= mean_band(width / math.sqrt(12), draws)


def _give_back(**changes: Any) -> float:
    args: dict[str, Any] = {"heartbeat_s": 1.0, "mean_service_s": 1.0, "c": 1, "p_all_busy": 0.0}
    lease_s = changes.pop("lease_s", 3.0)
    return lease_give_back_s(lease_s, **(args | changes))


BAD_KIND: Any = "linear"  # typed Any: a wrong kind is the point of the test

INVALID_CALLS: list[tuple[str, Callable[[], object]]] = [
    ("arrival rate", lambda: mmc(-1.0, 1.0, 1)),
    ("arrival rate", lambda: mmc(math.nan, 1.0, 1)),
    ("service rate", lambda: mmc(1.0, 0.0, 1)),
    ("worker", lambda: mmc(0.5, 1.0, 0)),
    ("server count", lambda: erlang_b(-1, 1.0)),
    ("offered load", lambda: erlang_b(1, -1.0)),
    ("offered load", lambda: erlang_c(2, -1.0)),
    ("offered load", lambda: erlang_c(2, math.nan)),
    ("arrival rate", lambda: mg1_wait(math.nan, 1.0, scv_s=1.0)),
    ("arrival rate", lambda: allen_cunneen_wait(-1.0, 1.0, 1, scv_a=1.0, scv_s=1.0)),
    ("worker", lambda: allen_cunneen_wait(0.5, 1.0, 0, scv_a=1.0, scv_s=1.0)),
    ("worker", lambda: priority_waits([0.5], 1.0, 0)),
    ("service rate", lambda: priority_waits([0.5], math.nan, 1)),
    ("utilisation", lambda: unstable_reason(math.nan)),
    ("worker", lambda: erlang_c(0, 0.5)),
    ("mean service", lambda: mg1_wait(0.5, 0.0, scv_s=1.0)),
    ("SCV", lambda: mg1_wait(0.5, 1.0, scv_s=-1.0)),
    ("SCV", lambda: allen_cunneen_wait(0.5, 1.0, 1, scv_a=-1.0, scv_s=1.0)),
    ("class", lambda: priority_waits([], 1.0, 1)),
    ("class rates", lambda: priority_waits([-1.0, 2.0], 1.0, 2)),
    ("never ends", lambda: expected_attempts(1.0, None)),
    ("failure probability", lambda: expected_attempts(1.5, 3)),
    ("failure probability", lambda: attempts_variance(math.nan, 3)),
    ("retry limit", lambda: dead_letter_probability(0.3, -1)),
    ("arrival rate", lambda: effective_arrival_rate(-1.0, 0.1, 3)),
    ("probability", lambda: binomial_band(1.5, 10)),
    ("trial", lambda: binomial_band(0.5, 0)),
    ("standard deviation", lambda: mean_band(-1.0, 10)),
    ("sample", lambda: mean_band(1.0, 0)),
    ("max_p_wait", lambda: staffing(8.0, 1.0, max_p_wait=0.0)),
    ("service rate", lambda: staffing(8.0, 0.0, max_p_wait=0.2)),
    ("kind", lambda: expected_backoff_s(BAD_KIND, 1, base_s=0.1, cap_s=1.0)),
    ("failure count", lambda: expected_backoff_s("full", 0, base_s=0.1, cap_s=1.0)),
    ("cap", lambda: expected_backoff_s("full", 1, base_s=1.0, cap_s=0.1)),
    ("wait", lambda: mmc(0.5, 1.0, 1).p_wait_longer_than(-1.0)),
    ("quantile", lambda: mmc(0.5, 1.0, 1).wait_quantile(1.0)),
    ("quantile", lambda: mmc(0.5, 1.0, 1).wait_quantile(-0.1)),
    ("lease", lambda: lease_give_back_s(0.0, heartbeat_s=1.0, mean_service_s=1, c=1, p_all_busy=0)),
    (
        "heartbeat",
        lambda: lease_give_back_s(3, heartbeat_s=4.0, mean_service_s=1, c=1, p_all_busy=0),
    ),
    (
        "mean service",
        lambda: lease_give_back_s(3, heartbeat_s=1, mean_service_s=0, c=1, p_all_busy=0),
    ),
    ("worker", lambda: lease_give_back_s(3, heartbeat_s=1, mean_service_s=1, c=0, p_all_busy=0)),
    (
        "probability",
        lambda: lease_give_back_s(3, heartbeat_s=1, mean_service_s=1, c=1, p_all_busy=2),
    ),
]


@pytest.mark.parametrize(("message", "call"), INVALID_CALLS)
def test_invalid_inputs_raise_value_error_naming_the_problem(
    message: str, call: Callable[[], object]
) -> None:
    """Bad input raises InvalidInputError, a ValueError, saying what (an unstable load does
    not: it is an answer, see the tests below)."""
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert isinstance(caught.value, InvalidInputError)


# rho = 0.5, 1.0 and 1.5 on one worker (mu = 1) and on four (mu = 1, lam = 4 * rho)
RHOS = [0.5, 1.0, 1.5]


@pytest.mark.parametrize("rho", RHOS)
@pytest.mark.parametrize("c", [1, 4])
def test_mmc_answers_every_load_and_says_when_it_does_not_apply(rho: float, c: int) -> None:
    """Stable: the finite formula and no reason. rho >= 1: applies False, a reason naming rho,
    every wait and count infinite, every arrival waits (Erlang C's limit 1)."""
    m = mmc(rho * c, 1.0, c)
    assert m.rho == pytest.approx(rho)
    if rho < 1:
        assert m.applies and m.reason == ""
        assert all(math.isfinite(x) for x in (m.wq, m.w, m.lq, m.l)) and 0 < m.p_wait < 1
        assert m.wq == pytest.approx(m.p_wait / (c - rho * c))
    else:
        assert not m.applies
        assert m.reason == f"unstable: rho = {rho:.2f} >= 1, the queue grows without bound"
        assert (m.p_wait, m.wq, m.w, m.lq, m.l) == (1.0, math.inf, math.inf, math.inf, math.inf)
        assert m.p_wait_longer_than(100.0) == 1.0 and m.wait_quantile(0.5) == math.inf


@pytest.mark.parametrize("rho", RHOS)
def test_erlang_c_reaches_its_limit_1_at_saturation(rho: float) -> None:
    """C(c, a) for a < c from the recursion; at a >= c the limit 1, which the stable values
    approach from below."""
    for c in (1, 4, 10):
        value = erlang_c(c, rho * c)
        if rho < 1:
            assert 0 < value < 1
            assert value < erlang_c(c, 0.999 * c) < 1
        else:
            assert value == 1.0
    assert erlang_c(10, 0.99999 * 10) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("rho", RHOS)
def test_mg1_and_allen_cunneen_waits_are_infinite_when_unstable(rho: float) -> None:
    """Pollaczek-Khinchine and Allen-Cunneen: finite below rho = 1, inf at and above it, also
    for constant service and arrivals (no inf * 0 = nan)."""
    for scv in (0.0, 1.0, 4.0):
        pk = mg1_wait(rho, 1.0, scv_s=scv)
        ac = allen_cunneen_wait(4 * rho, 1.0, 4, scv_a=scv, scv_s=scv)
        if rho < 1:
            assert pk == pytest.approx(rho / (1 - rho) * (1 + scv) / 2)
            assert ac == pytest.approx(mmc(4 * rho, 1.0, 4).wq * scv)
        else:
            assert pk == math.inf and ac == math.inf


@pytest.mark.parametrize("rho", RHOS)
def test_priority_waits_stay_finite_for_the_classes_below_capacity(rho: float) -> None:
    """Two equal classes on M/M/10: the top class carries rho/2 and is always stable, with
    W0 at its limit 1/(c*mu) once the total is unstable; the low class waits inf from rho = 1."""
    high, low = priority_waits([5.0 * rho, 5.0 * rho], 1.0, 10)
    w0 = erlang_c(10, 10.0 * rho) / 10.0
    assert high == pytest.approx(w0 / (1 - rho / 2))
    assert math.isfinite(high)
    if rho < 1:
        assert low == pytest.approx(w0 / ((1 - rho / 2) * (1 - rho)))
    else:
        assert low == math.inf and w0 == pytest.approx(0.1)
    # M/M/1 at sigma = 0.5, 0.9, 1.4: W0 = 1, so 1/(1*0.5) and 1/(0.5*0.1), then inf
    assert priority_waits([0.5, 0.4, 0.5], 1.0, 1) == [
        pytest.approx(2.0),
        pytest.approx(20.0),
        math.inf,
    ]
    # a class that alone fills the workers waits inf, and so does everything below it
    assert priority_waits([1.0, 0.5], 1.0, 1) == [math.inf, math.inf]


@pytest.mark.parametrize("rho", RHOS)
def test_staffing_is_unchanged_by_the_load_and_always_stable(rho: float) -> None:
    """Staffing answers every load with a stable count: more workers than the offered load."""
    c = staffing(4 * rho, 1.0, max_p_wait=0.2)
    assert c > 4 * rho and erlang_c(c, 4 * rho) <= 0.2 < erlang_c(c - 1, 4 * rho)


def test_stability_is_decided_by_rho_alone() -> None:
    """The reason is empty exactly below 1, and names rho to two decimals."""
    assert unstable_reason(0.999) == ""
    assert unstable_reason(1.0).startswith("unstable: rho = 1.00")
    assert "rho = 2.50" in unstable_reason(2.5)


@pytest.mark.parametrize("lease_s", [0.3, 2.5, 20.0])
@pytest.mark.parametrize("mean_s", [0.5, 1.0, 4.0])
def test_lease_give_back_closed_form_matches_its_integral(lease_s: float, mean_s: float) -> None:
    """L - E[min(U, S)] + p m/c: the closed form against a midpoint sum of
    int_0^h P(U > x) P(S > x) dx with S ~ Gamma(2, m) and U ~ Uniform(0, h)."""
    h, steps = lease_s / 3, 20_000
    dx = h / steps
    xs = [(i + 0.5) * dx for i in range(steps)]
    e_min = sum((1 - x / h) * (1 + x / mean_s) * math.exp(-x / mean_s) for x in xs) * dx
    for p, c in ((0.0, 1), (0.5, 4)):
        value = lease_give_back_s(lease_s, heartbeat_s=h, mean_service_s=mean_s, c=c, p_all_busy=p)
        assert value == pytest.approx(lease_s - e_min + p * mean_s / c, rel=1e-6)
    # between the lease rules' ends: a death lands 2L/3 to L before the deadline
    bare = lease_give_back_s(lease_s, heartbeat_s=h, mean_service_s=mean_s, c=1, p_all_busy=0)
    assert 2 * lease_s / 3 < bare < lease_s
