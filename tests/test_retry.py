"""Backoff policies against the formulas in docs/experiments.md."""

from __future__ import annotations

import random

import pytest

from jobsim import RetryPolicy
from jobsim.errors import InvalidInputError


def test_fixed_and_capped_exponential_are_exact() -> None:
    rng = random.Random(0)
    assert [RetryPolicy(kind="fixed", base_s=0.5).delay_s(n, rng=rng) for n in (1, 5)] == [0.5, 0.5]
    exp = RetryPolicy(kind="exponential", base_s=0.1, cap_s=1.0)
    assert [exp.delay_s(n, rng=rng) for n in range(1, 7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )
    assert exp.delay_s(10_000, rng=rng) == 1.0


@pytest.mark.parametrize("kind, low, high", [("full", 0.0, 1.0), ("equal", 0.5, 1.0)])
def test_jitter_stays_in_its_range_and_has_the_right_mean(
    kind: str, low: float, high: float
) -> None:
    """Uniform on [low, high] x the exponential delay: mean within 4 standard errors."""
    policy = RetryPolicy(kind=kind, base_s=0.1, cap_s=10.0)
    rng = random.Random(42)
    ceiling = policy.exponential_s(4)  # 0.8
    draws = [policy.delay_s(4, rng=rng) for _ in range(20_000)]
    assert all(low * ceiling <= d <= high * ceiling for d in draws)
    mean = sum(draws) / len(draws)
    width = (high - low) * ceiling
    assert abs(mean - (low + high) / 2 * ceiling) <= 4 * width / (12 * len(draws)) ** 0.5


def test_decorrelated_jitter_grows_from_the_previous_delay_and_respects_the_cap() -> None:
    policy = RetryPolicy(kind="decorrelated", base_s=0.1, cap_s=2.0)
    rng = random.Random(7)
    previous = None
    for n in range(1, 200):
        delay = policy.delay_s(n, previous_s=previous, rng=rng)
        upper = 3 * (previous if previous is not None else 0.1)
        assert 0.1 <= delay <= min(2.0, max(upper, 0.1))
        previous = delay


def test_same_seed_gives_the_same_delays() -> None:
    policy = RetryPolicy(kind="full", base_s=0.1, cap_s=5.0)
    a = [policy.delay_s(n, rng=random.Random(3)) for n in range(1, 10)]
    b = [policy.delay_s(n, rng=random.Random(3)) for n in range(1, 10)]
    assert a == b


@pytest.mark.parametrize("kwargs", [{"kind": "linear"}, {"base_s": -1}, {"base_s": 2, "cap_s": 1}])
def test_bad_policy_is_rejected(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize("kind", ["fixed", "exponential", "full", "equal", "decorrelated"])
def test_a_scaled_policy_draws_the_same_delays_times_the_factor(kind: str) -> None:
    """Model to wall seconds: the same generator gives every delay times the factor (to
    rounding), jitter and decorrelated growth included, so a run's backoffs scale with it."""
    model = RetryPolicy(kind=kind, base_s=0.5, cap_s=8.0)  # type: ignore[arg-type]
    wall = model.scaled(0.01)
    assert (wall.kind, wall.base_s, wall.cap_s) == (kind, 0.005, 0.08)
    rngs = random.Random(3), random.Random(3)
    previous: list[float | None] = [None, None]
    for n in range(1, 9):
        got = [
            p.delay_s(n, previous_s=previous[i], rng=rngs[i]) for i, p in enumerate((model, wall))
        ]
        assert got[1] == pytest.approx(got[0] * 0.01, rel=1e-12)
        previous = got  # type: ignore[assignment]


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan"), float("inf")])
def test_a_scale_factor_must_be_finite_and_positive(factor: float) -> None:
    with pytest.raises(InvalidInputError) as raised:
        RetryPolicy().scaled(factor)
    assert raised.value.field == "factor"
