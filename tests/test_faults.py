"""jobsim.sim.faults: the declarative fault plan, its validation and its seeded schedule."""

from __future__ import annotations

import math

import pytest

from jobsim.errors import InvalidInputError
from jobsim.sim.faults import FaultPlan, Pause, Restart, Spike


def test_a_default_plan_is_empty_whatever_its_seed() -> None:
    """FaultPlan() injects nothing, at any seed; any fault makes it non-empty."""
    assert FaultPlan().empty and FaultPlan(seed=9).empty
    for plan in (
        FaultPlan(exception_probability=0.1),
        FaultPlan(poison={1: "fail"}),
        FaultPlan(spikes=(Spike(start_s=0, end_s=1, extra_s=1),)),
        FaultPlan(worker_crashes=1),
        FaultPlan(redis_drops=(1.0,)),
        FaultPlan(redis_pauses=(Pause(at_s=1, duration_s=1),)),
        FaultPlan(redis_restart=Restart(at_s=1)),
        FaultPlan(slow_worker_factor=2.0),
    ):
        assert not plan.empty, plan


def test_crash_times_are_sorted_inside_the_first_80_percent_of_the_horizon() -> None:
    """worker_crashes times, sorted, each within [0, 0.8 * horizon)."""
    times = FaultPlan(worker_crashes=200, seed=1).crash_times(horizon_s=50.0)
    assert len(times) == 200
    assert times == sorted(times)
    assert times[0] >= 0 and times[-1] < 40.0


def test_crash_times_are_uniform_over_their_window() -> None:
    """The mean of n uniform times on [0, 40) is 20 within 4 SE (SD 40/sqrt(12))."""
    n = 4_000
    times = FaultPlan(worker_crashes=n, seed=2).crash_times(horizon_s=50.0)
    assert abs(sum(times) / n - 20.0) <= 4 * (40 / math.sqrt(12)) / math.sqrt(n)


def test_crash_times_depend_on_both_the_plan_seed_and_the_run_seed() -> None:
    """Same seeds: same schedule; another plan seed or run seed: another schedule."""
    plan = FaultPlan(worker_crashes=3, seed=5)
    assert plan.crash_times(10.0, run_seed=1) == plan.crash_times(10.0, run_seed=1)
    assert plan.crash_times(10.0, run_seed=1) != plan.crash_times(10.0, run_seed=2)
    assert plan.crash_times(10.0) != FaultPlan(worker_crashes=3, seed=6).crash_times(10.0)


def test_no_crashes_means_an_empty_crash_schedule() -> None:
    """worker_crashes=0 gives no times."""
    assert FaultPlan().crash_times(100.0) == []


def test_the_timeline_merges_every_timed_fault_in_time_order() -> None:
    """Drops, pauses (with their duration), the restart and crashes, sorted by model time."""
    plan = FaultPlan(
        redis_drops=(7.0, 1.0),
        redis_pauses=(Pause(at_s=3.0, duration_s=0.5),),
        redis_restart=Restart(at_s=5.0, persistence="everysec"),
        poison={0: "crash"},  # per-job, not timed: absent from the timeline
        spikes=(Spike(start_s=2.0, end_s=4.0, extra_s=1.0),),
        seed=0,
    )
    assert plan.timeline(horizon_s=100.0) == [
        (1.0, "drop", 0.0),
        (3.0, "pause", 0.5),
        (5.0, "restart", 0.0),
        (7.0, "drop", 0.0),
    ]


def test_the_timeline_includes_exactly_the_crash_times() -> None:
    """Each crash of crash_times appears once in the timeline as a 'crash' event."""
    plan = FaultPlan(worker_crashes=4, redis_drops=(2.0,), seed=3)
    crashes = [t for t, kind, _ in plan.timeline(20.0, run_seed=7) if kind == "crash"]
    assert crashes == plan.crash_times(20.0, run_seed=7)


def test_a_restart_defaults_to_aof_always() -> None:
    """Restart without persistence keeps every acknowledged write."""
    assert Restart(at_s=1.0).persistence == "always"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"exception_probability": -0.01}, "exception_probability"),
        ({"exception_probability": 1.01}, "exception_probability"),
        ({"exception_probability": math.nan}, "exception_probability"),
        ({"poison": {3: "explode"}}, "poison"),
        ({"slow_worker_factor": 0.5}, "slow_worker_factor"),
    ],
)
def test_an_invalid_plan_is_refused_naming_its_field(kwargs: dict, field: str) -> None:
    """Out-of-range settings raise InvalidInputError carrying the field."""
    with pytest.raises(InvalidInputError) as info:
        FaultPlan(**kwargs)
    assert info.value.field == field


def test_a_bad_poison_mode_error_names_only_the_bad_entries() -> None:
    """The error's value lists the offending job indexes and modes, not the valid ones."""
    with pytest.raises(InvalidInputError) as info:
        FaultPlan(poison={1: "fail", 2: "melt", 3: "crash"})  # type: ignore[dict-item]
    assert info.value.value == {2: "melt"}


def test_a_negative_crash_count_is_refused() -> None:
    """worker_crashes < 0 raises InvalidInputError at construction."""
    with pytest.raises(InvalidInputError):
        FaultPlan(worker_crashes=-1)


def test_an_unknown_restart_persistence_is_refused_with_the_plan() -> None:
    """A restart mode other than none/everysec/always is an InvalidInputError up front."""
    with pytest.raises(InvalidInputError):
        FaultPlan(redis_restart=Restart(at_s=1.0, persistence="alwys"))  # type: ignore[arg-type]
