"""The notebooks' package code: every chart is titled and labelled, and the experiment
drivers and models behind them say what docs/experiments.md says they should."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from jobsim import JobQueue, RetryPolicy, WorkerPool, connect, theory
from jobsim.sim import (
    Exponential,
    FaultPlan,
    Poisson,
    RunResult,
    Setup,
    Workload,
    charts,
    plots,
    run,
)
from jobsim.sim.budget import RetryBudget, Storm, expected_multiplier, load, simulate
from jobsim.sim.experiments import (
    class_waits,
    give_back_band,
    recovery_times,
    sample_statuses,
    utilisation_sweep,
    within,
)
from jobsim.sim.interrupt import interrupt_worker
from jobsim.sim.outage import bucket_counts, outage_schedule, peak, run_outage
from jobsim.sim.replicas import Interval

matplotlib.use("Agg")  # headless; the chart helpers import pyplot only when drawing

QUICK = Workload(jobs=60, arrival=Poisson(rate_per_s=2.0), service=Exponential(mean_s=1.0),
                 priorities={9: 0.5, 0: 0.5}, time_scale=0.002, seed=3)  # fmt: skip


@pytest.fixture(scope="module")
def quick_run() -> RunResult:
    return run(QUICK, setup=Setup(workers=4))


def _sweep_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "workers": [1, 4], "utilisation": [0.5, 0.8], "measured_utilisation": [0.5, 0.8],
        "wait_per_service": [1.0, 0.8], "wait_half_width_s": [0.1, math.nan],
        "mean_service_s": [1.0, 1.0],
        "fail_probability": [0.1, 0.3], "attempts_per_job": [1.11, 1.42], "submitted": [100, 100],
    })  # fmt: skip


# fmt: off
CHARTS: dict[str, Callable[[RunResult], object]] = {
    "status_counts": lambda r: charts.status_counts(pd.DataFrame(
        {"t_s": [0.0, 0.1], "queued": [2, 0], "processing": [0, 1], "retrying": [0, 0],
         "completed": [0, 1], "failed": [0, 0]})),
    "wait_vs_utilisation": lambda r: charts.wait_vs_utilisation(_sweep_frame(), log=True),
    "staffing": lambda r: charts.staffing(8.0, 1.0, max_p_wait=0.2, workers=range(8, 15)),
    "attempts_vs_failure": lambda r: charts.attempts_vs_failure(_sweep_frame(), max_retries=3),
    "utilisation_vs_failure": lambda r: charts.utilisation_vs_failure(
        0.6, measured=pd.DataFrame({"fail_probability": [0.2], "measured_utilisation": [0.8]})),
    "in_system_over_time": lambda r: charts.in_system_over_time({"run": r}),
    "retry_waves": lambda r: charts.retry_waves({"a": [0.01, 0.02, 0.3]}, bucket_s=0.025),
    "load_over_time": lambda r: charts.load_over_time(
        {"x": pd.DataFrame({"t": [0.0, 1.0], "multiplier": [1.0, 4.0]})}, outage=(0.5, 1.5),
        expected={"x": 4.0}),
    "recovery_vs_lease": lambda r: charts.recovery_vs_lease(
        pd.DataFrame({"lease_s": [5.0, 10.0], "recovery_s": [4.5, 9.5]})),
    "class_waits_vs_utilisation": lambda r: charts.class_waits_vs_utilisation(
        pd.DataFrame({"utilisation": [0.6, 0.6], "priority": [9, 0], "wait_s": [0.1, 0.3]}),
        workers=4, shares=[0.5, 0.5]),
    "wait_by_arrival": lambda r: charts.wait_by_arrival({"run": r}, priority=0),
    "wait_vs_theory": plots.wait_vs_theory,
    "worker_timeline": lambda r: plots.worker_timeline(r, max_attempts=10),
    "grouped_bars": lambda r: charts.grouped_bars(
        pd.DataFrame({"lost": [0, 3], "redelivered": [1, 0]}, index=["a", "b"]),
        title="t", xlabel="scenario", ylabel="jobs"),
    "give_back_vs_lease": lambda r: charts.give_back_vs_lease(
        pd.DataFrame({"lease_s": [2.5, 5.0], "theory_s": [2.2, 4.4],
                      "given_back": [Interval(2.2, 0.1, 20), Interval(4.4, 0.1, 20)]}),
        measured={"real": pd.DataFrame({"lease_s": [2.5], "given_back_s": [2.0]})}),
}
# fmt: on


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_every_chart_has_a_title_labelled_axes_and_renders(
    name: str, quick_run: RunResult, tmp_path: Path
) -> None:
    """Each chart helper titles its chart and labels both axes, and saves as PNG."""
    ax = CHARTS[name](quick_run)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()  # type: ignore[attr-defined]
    ax.figure.savefig(tmp_path / f"{name}.png")  # type: ignore[attr-defined]
    matplotlib.pyplot.close("all")


def test_the_dimensionless_erlang_c_curve_matches_the_reference_table() -> None:
    """Wq/E[S] at c=10, rho=0.8 is docs/experiments.md's 0.20459 (mu = 1), and M/M/1's 4.0."""
    assert charts.erlang_c_wait_per_service(10, 0.8) == pytest.approx(0.20459, abs=1e-5)
    assert charts.erlang_c_wait_per_service(1, 0.8) == pytest.approx(theory.mmc(0.8, 1, 1).wq)
    assert charts.erlang_c_wait_per_service(4, 1.0) == math.inf  # unstable: no ZeroDivisionError


# --- experiments ------------------------------------------------------------------------------


def test_within_prints_pass_inside_the_band_and_fail_outside() -> None:
    assert within("x", 1.0, 1.05, 0.1).endswith("PASS")
    assert within("x", 1.0, 1.5, 0.1).endswith("FAIL")
    assert within("x", 1.234, 1.0, 0.5, show_measured=False) == "x vs theory 1.000 ± 0.500: PASS"


def test_utilisation_sweep_gives_one_row_per_point_with_its_own_seed() -> None:
    w = Workload(service=Exponential(mean_s=1.0), time_scale=0.002, seed=10)
    frame = utilisation_sweep({1: [0.5], 2: [0.5, 0.7]}, workload=w, wall_s=0.05)
    assert list(frame["workers"]) == [1, 2, 2]
    assert list(frame["rate_per_s"]) == pytest.approx([0.5, 1.0, 1.4])
    assert (frame["jobs"] >= 40).all() and frame["valid"].all()
    assert (frame["measured_utilisation"] > 0).all()
    assert frame["wait_half_width_s"].isna().all()  # one run per point: no interval


def test_a_replicated_sweep_on_the_twin_brackets_erlang_c() -> None:
    """Ten runs of 20,000 jobs of M/M/4 at rho = 0.65: the 95% t-interval is a few per cent
    wide and the nominal Erlang C wait lies within it or within 5% (the verdict of the
    notebooks); the twin is exact per seed, so this can only fail on a semantic change."""
    w = Workload(service=Exponential(mean_s=1.0), seed=3)
    frame = utilisation_sweep({4: [0.65]}, workload=w, jobs=20_000, runs=10,
                              setup=Setup(backend="virtual"))  # fmt: skip
    row = frame.iloc[0]
    assert row["runs"] == 10 and row["theory_wait_s"] == pytest.approx(theory.mmc(2.6, 1, 4).wq)
    assert row["wait_half_width_s"] < 0.1 * row["theory_wait_s"]
    band = max(row["wait_half_width_s"], 0.05 * row["theory_wait_s"])
    assert abs(row["wait_s"] - row["theory_wait_s"]) <= band
    assert row["overhead_per_attempt_s"] == 0.0


def test_worker_timeline_says_when_it_shows_part_of_the_run(quick_run: RunResult) -> None:
    partial = plots.worker_timeline(quick_run, max_attempts=10)
    assert f"first 10 of {len(quick_run.attempts)} attempts" in partial.get_title()
    whole = plots.worker_timeline(quick_run, max_attempts=10_000)
    assert whole.get_title() == "Attempts per worker"
    matplotlib.pyplot.close("all")


def test_wait_vs_theory_draws_a_formula_line_per_priority_class(quick_run: RunResult) -> None:
    """A priority mix: one measured curve and one dashed formula mean per class."""
    ax = plots.wait_vs_theory(quick_run)
    labels = [line.get_label() for line in ax.get_lines()]
    assert ax.get_title() == "Waiting time by priority vs the priority formula"
    for priority in (9, 0):
        assert f"priority {priority}, measured" in labels
        assert any(label.startswith(f"priority {priority}, formula mean") for label in labels)
    matplotlib.pyplot.close("all")


def test_wait_vs_theory_says_why_when_no_formula_applies() -> None:
    unstable = Workload(jobs=200, arrival=Poisson(rate_per_s=5.0), seed=1)
    result = run(unstable, setup=Setup(workers=4, backend="virtual"))
    ax = plots.wait_vs_theory(result)
    assert "no theory" in ax.get_title() and "unstable" in ax.get_title()
    matplotlib.pyplot.close("all")


def test_class_waits_have_one_row_per_priority_highest_first(quick_run: RunResult) -> None:
    table = class_waits(quick_run)
    assert list(table["priority"]) == [9, 0]
    assert table["jobs"].sum() == len(quick_run.jobs) - len(quick_run.jobs) // 10
    assert table["theory_wait_s"].notna().all()


def test_a_dead_worker_s_job_is_redelivered_after_at_most_its_lease() -> None:
    """Thread crashes with a 0.1 wall s lease: each job is given back to the queue within
    [2L/3, L] of its worker's death, give or take a late heartbeat and the wait for a
    worker's next round trip (the band of ``give_back_band``, from the measured service and
    per-attempt cost); its next attempt starts after that, once it is its turn."""
    lease = 0.1 / QUICK.time_scale  # model seconds, as the frames and the band are
    result = run(QUICK, FaultPlan(worker_crashes=2, seed=1), Setup(workers=4, lease_s=lease))
    recovered = recovery_times(result)
    assert result.summary.lost == 0
    assert len(recovered) >= 1
    low, high = give_back_band(result, checks=len(recovered))
    assert low <= 2 * lease / 3 and lease <= high
    assert recovered["given_back_s"].between(low, high).all(), (low, high, recovered)
    assert (recovered["requeued_s"] >= 0).all()
    given_back = recovered["given_back_s"] + recovered["requeued_s"]
    assert given_back.to_numpy() == pytest.approx(recovered["recovery_s"].to_numpy())


def test_sampled_statuses_end_drained_and_count_every_job() -> None:
    queue = JobQueue(connect(), "statuses")
    for i in range(5):
        queue.submit("sleep", {"seconds": 0.01}, job_id=f"s{i}")
    with WorkerPool(queue, concurrency=2):
        samples = sample_statuses(queue, every_s=0.01)
    statuses = ["queued", "processing", "retrying", "completed", "failed"]
    assert (samples[statuses].sum(axis=1) == 5).all()
    assert samples.iloc[-1]["completed"] == 5
    queue.delete()


# --- outage, budget ---------------------------------------------------------------------------


def test_without_jitter_every_client_retries_at_the_same_moments() -> None:
    plan = outage_schedule(RetryPolicy(kind="exponential", base_s=0.1, cap_s=1.0),
                           jobs=20, outage_s=0.5, max_retries=8)  # fmt: skip
    assert sorted(set(plan["started"].round(6))) == [0.0, 0.1, 0.3, 0.7]
    assert peak(plan.loc[plan["number"] > 1, "started"], 0.025) == 20


def test_full_jitter_spreads_the_first_wave_over_its_window() -> None:
    """With 200 clients and a 0.2 s window, no 25 ms bucket gets more than half of them."""
    plan = outage_schedule(RetryPolicy(kind="full", base_s=0.2, cap_s=1.6), jobs=200,
                           outage_s=0.01, seed=4)  # fmt: skip
    retries = plan.loc[plan["number"] == 2, "started"]
    assert retries.between(0.0, 0.2).all()
    assert peak(retries, 0.025) < 100
    assert bucket_counts(retries, 0.025, 0.2)["count"].sum() == 200


def test_on_the_queue_a_sustained_outage_costs_every_job_all_its_attempts() -> None:
    """Backoff or not, each job makes r + 1 attempts and is dead-lettered; nothing is lost."""
    result = run_outage(RetryPolicy(kind="full", base_s=0.01, cap_s=0.05), jobs=12,
                        outage_s=600.0, max_retries=2)  # fmt: skip
    assert result.attempts_per_job == 3.0
    assert result.verdict.dead_lettered == 12 and result.verdict.valid


def test_after_a_short_outage_synchronized_retries_succeed_together() -> None:
    """Without jitter every job retries at the same moments. Half-second steps leave each
    attempt hundreds of ms of slack against a busy machine (a 0.1 s schedule did not)."""
    result = run_outage(RetryPolicy(kind="exponential", base_s=0.5, cap_s=2.0), jobs=10,
                        outage_s=1.0)  # fmt: skip
    assert result.attempts_per_job == 3.0  # at 0 and 0.5 s it is down; at 1.5 s it is back
    assert result.verdict.completed == 10
    assert result.retry_peak(0.25) == 10  # the 0.5 s retries share one quarter-second


def test_backoff_alone_multiplies_the_load_by_r_plus_one_under_sustained_failure() -> None:
    storm = Storm(rate_per_s=20.0, duration_s=5.0, outage=(0.0, 1e9), max_retries=3, seed=2)
    attempts = simulate(storm)
    jobs = attempts["job"].nunique()
    assert len(attempts) == 4 * jobs
    assert (attempts.groupby("job")["outcome"].last() == "dead").all()
    assert expected_multiplier(1.0, 3) == 4.0


def test_a_retry_budget_holds_retries_to_its_ratio_plus_the_bucket() -> None:
    budget = RetryBudget(ratio=0.1, max_tokens=5.0)
    storm = Storm(rate_per_s=50.0, duration_s=20.0, outage=(0.0, 1e9), budget=budget, seed=2)
    attempts = simulate(storm)
    requests = attempts["job"].nunique()
    retries = int((attempts["number"] > 1).sum())
    assert retries <= budget.ratio * requests + budget.max_tokens
    assert expected_multiplier(1.0, 3, budget) == pytest.approx(1.1)
    frame = load(attempts, rate_per_s=50.0)
    assert frame["multiplier"].iloc[2:-2].mean() == pytest.approx(1.1, abs=0.25)


def test_the_model_is_reproducible_and_validates_its_budget() -> None:
    assert simulate(Storm(seed=5)).equals(simulate(Storm(seed=5)))
    with pytest.raises(ValueError):
        RetryBudget(ratio=-1.0)


# --- interrupting worker processes ------------------------------------------------------------


@pytest.mark.slow
def test_no_job_lost_when_a_busy_worker_process_is_sigkilled() -> None:
    """The job in flight is given back at once and runs again: lost 0, redelivered 1."""
    # a job of 1 s: the signal lands while it runs, even when the machine is slow to report
    # the start (with 0.3 s jobs a loaded machine sometimes signalled after the job ended)
    result = interrupt_worker("kill", lease_s=0.5, jobs=4, job_s=1.0)
    assert len(result.in_flight) == 1
    assert result.verdict.lost == 0 and result.verdict.valid
    assert result.verdict.redelivered == 1 and result.verdict.duplicates == 0


@pytest.mark.slow
def test_a_worker_frozen_past_its_lease_has_its_late_result_fenced() -> None:
    """SIGSTOP for longer than the lease: another worker runs the job, the thawed worker's
    result is refused, and the checker counts one duplicate."""
    result = interrupt_worker("stop", lease_s=0.2, pause_s=1.5, jobs=4, job_s=1.0)
    assert result.verdict.duplicates == 1 and result.verdict.lost == 0
    assert int(result.jobs["fenced"].sum()) == 1
    assert math.isclose(result.pause_s, 1.5)
