"""jobsim.config: lease, retention and queue settings, their defaults and their checks."""

from __future__ import annotations

import math

import pytest

from jobsim.config import Lease, QueueConfig, Retention
from jobsim.errors import InvalidInputError


def test_heartbeats_default_to_a_third_of_the_lease() -> None:
    """Without heartbeat_s, live workers extend their leases every duration/3."""
    assert Lease(duration_s=9.0).heartbeat_every_s == 3.0
    assert Lease(duration_s=9.0, heartbeat_s=1.0).heartbeat_every_s == 1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration_s": 0.0}, "duration_s"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"duration_s": math.nan}, "duration_s"),
        ({"duration_s": 5.0, "heartbeat_s": 5.0}, "heartbeat_s"),
        ({"duration_s": 5.0, "heartbeat_s": 0.0}, "heartbeat_s"),
        ({"duration_s": 5.0, "heartbeat_s": math.nan}, "heartbeat_s"),
    ],
)
def test_a_lease_that_could_not_be_kept_alive_is_refused(kwargs: dict, field: str) -> None:
    """A lease must be positive and its heartbeat strictly shorter than the lease."""
    with pytest.raises(InvalidInputError) as info:
        Lease(**kwargs)
    assert info.value.field == field


def test_retention_keeps_ten_thousand_records_for_a_day_by_default() -> None:
    """The default bounds memory: 10,000 records, 86,400 s; scripts get 10000 and µs."""
    r = Retention()
    assert (r.max_completed, r.max_age_s, r.unlimited) == (10_000, 86_400.0, False)
    assert (r.keep_count, r.keep_age_us) == (10_000, 86_400_000_000)


def test_retention_none_means_no_limit_and_reaches_the_scripts_as_zero() -> None:
    """None for both is unlimited; each None is passed to Lua as 0 (no limit)."""
    r = Retention(max_completed=None, max_age_s=None)
    assert r.unlimited and (r.keep_count, r.keep_age_us) == (0, 0)
    assert not Retention(max_completed=None).unlimited  # the age limit still applies
    assert Retention(max_age_s=0.0000015).keep_age_us == 2  # rounded, not truncated


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_completed": 0}, "max_completed"),
        ({"max_completed": -5}, "max_completed"),
        ({"max_completed": 2.5}, "max_completed"),
        ({"max_completed": True}, "max_completed"),
        ({"max_age_s": 0.0}, "max_age_s"),
        ({"max_age_s": math.nan}, "max_age_s"),
    ],
)
def test_a_retention_that_keeps_nothing_or_is_not_a_count_is_refused(
    kwargs: dict, field: str
) -> None:
    """Counts are integers >= 1 (not bools), ages > 0; None is the way to say no limit."""
    with pytest.raises(InvalidInputError) as info:
        Retention(**kwargs)
    assert info.value.field == field


def test_strict_priority_by_default_and_aging_in_microseconds_when_set() -> None:
    """aging_s=None keeps priorities strict (a band wider than any wait); else band = aging µs."""
    strict = QueueConfig().band_us
    assert QueueConfig(aging_s=2.5).band_us == 2_500_000
    assert strict > 10**6 * 86_400 * 365 * 3  # more than three years of waiting per level


@pytest.mark.parametrize("aging_s", [0.0, -1.0, math.nan])
def test_non_positive_aging_is_refused(aging_s: float) -> None:
    """Aging must be a positive number of seconds per level."""
    with pytest.raises(InvalidInputError) as info:
        QueueConfig(aging_s=aging_s)
    assert info.value.field == "aging_s"
