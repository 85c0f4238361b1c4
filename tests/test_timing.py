"""jobsim.sim.timing: job and attempt frames, throughput bins, percentiles, the queue's own cost.

Jobs are built by hand with known timestamps, so every number is checked exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from jobsim.models import Attempt, Job, JobStatus, Outcome
from jobsim.sim.timing import (
    ATTEMPT_COLUMNS,
    ATTEMPT_TIMES,
    JOB_COLUMNS,
    JOB_TIMES,
    attempt_frame,
    busy_gap_s,
    busy_gaps_s,
    job_frame,
    percentiles,
    throughput,
    worked,
)

T0 = 1_000.0


def _job(
    job_id: str,
    submitted: float,
    attempts: list[tuple[str, float, float | None, Outcome]],
    *,
    status: JobStatus = JobStatus.COMPLETED,
    finished: float | None = None,
    priority: int = 0,
    fenced: int = 0,
    redeliveries: int = 0,
) -> Job:
    log = [
        Attempt(number=n, worker=w, started_at=T0 + s, ended_at=None if e is None else T0 + e,
                outcome=o)
        for n, (w, s, e, o) in enumerate(attempts, start=1)
    ]  # fmt: skip
    return Job(
        id=job_id,
        task="noop",
        payload=None,
        priority=priority,
        status=status,
        attempts=len(log),
        max_retries=3,
        max_attempts=4,
        worker=log[-1].worker if log else None,
        submitted_at=T0 + submitted,
        finished_at=None if finished is None else T0 + finished,
        fenced=fenced,
        redeliveries=redeliveries,
        attempt_log=log,
    )


JOBS = [
    # b: submitted at 1, retried once: ran 2..3 (retry) and 4..6 (completed)
    _job("b", 1.0, [("w1", 2.0, 3.0, Outcome.RETRY), ("w2", 4.0, 6.0, Outcome.COMPLETED)],
         finished=6.0, priority=9, redeliveries=1),
    # a: submitted at 0, ran 0.5..1.5 on w1 and completed
    _job("a", 0.0, [("w1", 0.5, 1.5, Outcome.COMPLETED)], finished=1.5, fenced=1),
    # c: submitted at 2, never started
    _job("c", 2.0, [], status=JobStatus.QUEUED),
    # d: submitted at 3, dead-lettered after one attempt on w1 that ran 3..5
    _job("d", 3.0, [("w1", 3.0, 5.0, Outcome.FAILED)], status=JobStatus.FAILED, finished=5.0),
]  # fmt: skip


def test_the_job_frame_has_one_row_per_job_sorted_by_submit_time_relative_to_t0() -> None:
    """Columns as documented, rows by submit time, times relative to t0."""
    frame = job_frame(JOBS, t0=T0, index={"a": 0, "b": 1})
    assert list(frame.columns) == JOB_COLUMNS
    assert frame["job_id"].tolist() == ["a", "b", "c", "d"]
    assert frame["submitted"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert frame["index"].tolist() == [0, 1, -1, -1]  # -1: not in the index


def test_wait_service_and_sojourn_come_from_the_attempt_log() -> None:
    """wait = first start - submit; service = sum of run times; sojourn = finish - submit."""
    frame = job_frame(JOBS, t0=T0).set_index("job_id")
    assert frame.loc["b", "wait_s"] == pytest.approx(1.0)
    assert frame.loc["b", "service_s"] == pytest.approx(1.0 + 2.0)  # both attempts count
    assert frame.loc["b", "sojourn_s"] == pytest.approx(5.0)
    assert frame.loc["b", "started"] == pytest.approx(2.0)
    assert frame.loc["a", ["wait_s", "service_s", "sojourn_s"]].tolist() == pytest.approx(
        [0.5, 1.0, 1.5]
    )
    assert frame.loc["d", "outcome"] == "failed" and frame.loc["d", "sojourn_s"] == 2.0


def test_a_job_that_never_ran_has_nan_times_not_zeros() -> None:
    """No attempt: started, finished, wait, service and sojourn are NaN."""
    row = job_frame(JOBS, t0=T0).set_index("job_id").loc["c"]
    for column in ("started", "finished", "wait_s", "service_s", "sojourn_s"):
        assert math.isnan(row[column]), column
    assert row["outcome"] == "queued" and row["attempts"] == 0


def test_only_a_fenced_late_result_marks_a_job_as_a_duplicate() -> None:
    """duplicate is fenced > 0; a redelivery alone is only a possible duplicate."""
    frame = job_frame(JOBS, t0=T0).set_index("job_id")
    assert frame["duplicate"].to_dict() == {"a": True, "b": False, "c": False, "d": False}
    assert frame.loc["b", "redeliveries"] == 1 and frame.loc["b", "worker"] == "w2"


def test_an_empty_run_gives_empty_frames_with_every_column() -> None:
    """No jobs: zero rows, the documented columns all present."""
    assert list(job_frame([]).columns) == JOB_COLUMNS and job_frame([]).empty
    assert list(attempt_frame([]).columns) == ATTEMPT_COLUMNS and attempt_frame([]).empty


def test_the_attempt_frame_has_one_row_per_attempt() -> None:
    """Four attempts in all, numbered per job, with their own run time and outcome."""
    frame = attempt_frame(JOBS, t0=T0)
    assert list(frame.columns) == ATTEMPT_COLUMNS
    assert len(frame) == 4
    b = frame[frame.job_id == "b"]
    assert b["number"].tolist() == [1, 2]
    assert b["service_s"].tolist() == pytest.approx([1.0, 2.0])
    assert b["outcome"].tolist() == ["retry", "completed"]


def test_a_time_scale_divides_every_time_column_and_nothing_else() -> None:
    """The simulator's runner passes its workload's wall seconds per model second: every
    time (relative to t0) comes out divided by it, NaN stays NaN, counts stay counts."""
    for build, times in ((job_frame, JOB_TIMES), (attempt_frame, ATTEMPT_TIMES)):
        wall, model = build(JOBS, t0=T0), build(JOBS, t0=T0, time_scale=0.25)
        for column in wall.columns:
            if column in times:
                pd.testing.assert_series_equal(model[column], wall[column] / 0.25)
            else:
                pd.testing.assert_series_equal(model[column], wall[column])
    assert set(JOB_TIMES) <= set(JOB_COLUMNS) and set(ATTEMPT_TIMES) <= set(ATTEMPT_COLUMNS)


def test_an_attempt_still_running_has_no_end_and_no_service_time() -> None:
    """A running attempt: ended and service_s NaN; worked() leaves it out."""
    running = _job("r", 0.0, [("w9", 1.0, None, Outcome.RUNNING)], status=JobStatus.PROCESSING)
    frame = attempt_frame([running], t0=T0)
    assert math.isnan(frame.loc[0, "ended"]) and math.isnan(frame.loc[0, "service_s"])
    assert worked(frame).empty


def test_worked_keeps_only_attempts_a_worker_ran_to_the_end() -> None:
    """Expired, crashed, timed-out and interrupted attempts are not service times."""
    outcomes = [Outcome.COMPLETED, Outcome.RETRY, Outcome.FAILED, Outcome.EXPIRED,
                Outcome.CRASHED, Outcome.TIMEOUT, Outcome.INTERRUPTED]  # fmt: skip
    job = _job("x", 0.0, [("w", float(i), i + 0.5, o) for i, o in enumerate(outcomes)])
    kept = worked(attempt_frame([job], t0=T0))
    assert kept["outcome"].tolist() == ["completed", "retry", "failed"]


def test_throughput_counts_finishes_per_second_per_bin_by_outcome() -> None:
    """Bins of 2 s up to the last finish: a (1.5) in [0, 2); d (5.0) and b (6.0) in [4, 6]."""
    out = throughput(job_frame(JOBS, t0=T0), bin_s=2.0)
    assert out["t"].tolist() == [1.0, 3.0, 5.0]
    assert out["completed"].tolist() == [0.5, 0.0, 0.5]  # the last bin is closed
    assert out["failed"].tolist() == [0.0, 0.0, 0.5]
    total = (out["completed"] + out["failed"]).sum() * 2.0
    assert total == 3  # every finished job counted once


def test_throughput_of_a_run_where_nothing_finished_is_an_empty_frame() -> None:
    """No finished job: no bins, the three columns still there."""
    out = throughput(job_frame([JOBS[2]], t0=T0), bin_s=1.0)
    assert out.empty and list(out.columns) == ["t", "completed", "failed"]


def test_percentiles_skip_nan_and_inf() -> None:
    """mean and p50/p95/p99 of the finite values only."""
    stats = percentiles([1.0, 2.0, 3.0, 4.0, math.nan, math.inf])
    assert stats["mean"] == 2.5 and stats["p50"] == 2.5
    assert stats["p99"] == pytest.approx(np.percentile([1, 2, 3, 4], 99))


def test_percentiles_of_nothing_are_nan_for_every_requested_quantile() -> None:
    """No finite value: NaN for mean and for each requested quantile key."""
    stats = percentiles(pd.Series([math.nan]), qs=(10, 90))
    assert set(stats) == {"mean", "p10", "p90"}
    assert all(math.isnan(v) for v in stats.values())


def test_busy_gaps_count_only_back_to_back_first_attempts_of_waiting_jobs() -> None:
    """On w1: a ends 1.5, b(1st) starts 2.0 with b submitted at 1 (waiting): gap 0.5.
    b ends 3.0, d starts 3.0, submitted at 3 (waiting at 3.0): gap 0. Retries and other
    workers' attempts are not gaps."""
    jobs = job_frame(JOBS, t0=T0)
    attempts = attempt_frame(JOBS, t0=T0)
    assert busy_gaps_s(attempts, jobs).tolist() == pytest.approx([0.5, 0.0])
    assert busy_gap_s(attempts, jobs) == pytest.approx(0.25)


def test_a_worker_that_was_idle_before_its_next_job_is_not_a_busy_gap() -> None:
    """The next job was submitted after the previous attempt ended: idle time, not cost."""
    jobs = [
        _job("p", 0.0, [("w", 0.0, 1.0, Outcome.COMPLETED)], finished=1.0),
        _job("q", 5.0, [("w", 5.1, 6.0, Outcome.COMPLETED)], finished=6.0),
    ]
    attempts, frame = attempt_frame(jobs, t0=T0), job_frame(jobs, t0=T0)
    assert busy_gaps_s(attempts, frame).size == 0
    assert math.isnan(busy_gap_s(attempts, frame))
