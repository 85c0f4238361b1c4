"""A run's summary in model seconds: what was measured, what the theory predicts beside
it, and the quantities derived from both, each computed in one place.

:func:`summarize` builds a :class:`RunSummary` from the run's frames, which are in model
seconds on every backend; only ``wall_s`` (how long the run took) is wall time.
:meth:`RunSummary.as_dict` is the JSON form the command line writes (``jobsim run --json-out``,
``jobsim sweep --csv`` via :func:`flatten`).

Example:
    >>> Percentiles.of([1.0, 2.0, 3.0, 5.0]).mean
    2.75
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from jobsim.sim.checker import Verdict
from jobsim.sim.faults import FaultPlan
from jobsim.sim.predict import Prediction, predictions
from jobsim.sim.setup import Setup
from jobsim.sim.timing import busy_gap_s, percentiles, worked
from jobsim.sim.workload import Workload

WARM_UP_SHARE = 0.1
"""Share of a run's first-submitted jobs left out of wait and sojourn statistics."""


def steady_state(jobs: pd.DataFrame) -> pd.DataFrame:
    """The jobs after the warm-up: all but the first :data:`WARM_UP_SHARE` in submit order.

    Example:
        >>> len(steady_state(pd.DataFrame({"submitted": range(25)})))
        23
    """
    return jobs.iloc[int(len(jobs) * WARM_UP_SHARE + 1e-9) :]  # 1e-9: 30 * 0.1 is 3


@dataclass(frozen=True, kw_only=True)
class Percentiles:
    """Mean and percentiles of a time, in seconds (NaN when nothing was measured)."""

    mean: float
    p50: float
    p95: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float] | pd.Series) -> Percentiles:
        """The statistics of the finite ``values``."""
        return cls(**percentiles(values))

    def as_dict(self) -> dict[str, float]:
        """``mean``, ``p50``, ``p95``, ``p99``."""
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class LittlesLaw:
    """L sampled from the queue's own counts over the busy window, with its 99% batch-means
    half-width, beside lambda x W from the jobs' timestamps (NaN when too few samples)."""

    l_sampled: float = math.nan
    l_half_width: float = math.nan
    lambda_w: float = math.nan

    @classmethod
    def measure(cls, finished: pd.DataFrame, samples: Sequence[tuple[float, int]]) -> LittlesLaw:
        """From the finished jobs and (time, jobs in system) samples, model seconds."""
        if finished.empty:
            return cls()
        start, end = float(finished["submitted"].min()), float(finished["finished"].max())
        counts = np.array([n for t, n in samples if start <= t <= end], dtype=float)
        if end <= start:  # every job arrived and finished at one instant: no window
            return cls()
        lambda_w = len(finished) / (end - start) * float(finished["sojourn_s"].mean())
        if counts.size < 20:
            return cls(lambda_w=lambda_w)
        batches = np.array([b.mean() for b in np.array_split(counts, 10)])
        half_width = 3.25 * float(batches.std(ddof=1)) / math.sqrt(len(batches))  # t(0.995, 9)
        return cls(l_sampled=float(counts.mean()), l_half_width=half_width, lambda_w=lambda_w)

    def as_dict(self) -> dict[str, float]:
        """``l_sampled``, ``l_half_width``, ``lambda_w``."""
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """One run in model seconds (but ``wall_s``): the checker's counts, the measured
    statistics, and the theory at the workload's rates (``theory``) and at the measured ones
    (``theory_at_measured_service``: the realised arrival rate, and the
    :attr:`effective_service_s`).

    Wait and sojourn statistics leave out the warm-up (:func:`steady_state`).
    """

    submitted: int
    completed: int
    failed: int  # dead-lettered
    lost: int
    duplicates: int
    redelivered: int
    valid: bool
    attempts_per_job: float
    dead_letter_rate: float
    throughput_per_s: float
    wait_s: Percentiles
    sojourn_s: Percentiles
    littles_law: LittlesLaw
    arrival_rate_per_s: float  # realised by the draws
    service_s: float  # mean time of the attempts a worker ran to the end
    overhead_per_attempt_s: float  # the queue's own cost per attempt, model s; NaN: unmeasured
    theory: Prediction
    theory_at_measured_service: Prediction
    workers: int
    wall_s: float  # how long the run took, wall seconds
    time_scale: float  # the workload's wall seconds per model second, for the record
    warnings: tuple[str, ...] = ()
    faults_applied: tuple[str, ...] = ()

    @property
    def effective_service_s(self) -> float:
        """What one attempt occupies a worker for: the mean service plus the queue's own
        cost per attempt (none counted when it could not be measured). NaN when no attempt
        ran to the end."""
        return effective_service_s(self.service_s, self.overhead_per_attempt_s)

    @property
    def measured_utilisation(self) -> float:
        """``rho = lambda * attempts per job * effective service / c``, all as measured."""
        return (
            self.arrival_rate_per_s
            * self.attempts_per_job
            * self.effective_service_s
            / (self.workers)
        )

    @property
    def wait_per_service(self) -> float:
        """Mean wait in units of the effective service time (dimensionless)."""
        return self.wait_s.mean / self.effective_service_s

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: nested dicts, the predictions that apply, lists for tuples."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if hasattr(value, "as_dict"):
                value = value.as_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


def effective_service_s(service_s: float, overhead_per_attempt_s: float) -> float:
    """Mean service plus the queue's cost per attempt; a NaN overhead counts as none, a NaN
    service stays NaN (nothing was measured)."""
    return service_s + (overhead_per_attempt_s if math.isfinite(overhead_per_attempt_s) else 0.0)


def summarize(
    jobs: pd.DataFrame,
    attempts: pd.DataFrame,
    verdict: Verdict,
    workload: Workload,
    setup: Setup,
    faults: FaultPlan,
    wall_s: float,
    samples: Sequence[tuple[float, int]] = (),
    faults_applied: Sequence[str] = (),
) -> RunSummary:
    """The run's summary, in model seconds, from frames in model seconds.

    ``overhead_per_attempt_s`` is the busy gap between attempts on one worker (see
    :func:`jobsim.sim.timing.busy_gap_s`). ``littles_law`` compares L sampled from the
    queue's own counts during the run with lambda x W from the timestamps.

    Args:
        jobs: the job frame (model seconds from the run's start).
        attempts: the attempt frame (same).
        verdict: the checker's verdict.
        workload: what was run.
        setup: how.
        faults: what went wrong, as planned.
        wall_s: the run's wall time.
        samples: (model seconds since start, jobs in system) from the queue's counts.
        faults_applied: one line per timed fault as applied.
    """
    service = float(worked(attempts)["service_s"].mean())
    overhead = busy_gap_s(attempts, jobs)
    submit_span = jobs["submitted"].max() - jobs["submitted"].min()
    arrivals = (len(jobs) - 1) / submit_span if submit_span > 0 else math.inf
    steady = steady_state(jobs)
    finished = jobs.dropna(subset=["finished"])
    span = (finished["finished"].max() - jobs["submitted"].min()) if len(finished) else math.nan
    warnings = []
    if math.isfinite(overhead) and overhead > 0.05 * service:
        warnings.append(
            f"the queue's own cost per attempt is {overhead / service:.0%} of the service time; "
            "raise time_scale for a closer match to the theory"
        )
    return RunSummary(
        submitted=verdict.submitted,
        completed=verdict.completed,
        failed=verdict.dead_lettered,
        lost=verdict.lost,
        duplicates=verdict.duplicates,
        redelivered=verdict.redelivered,
        valid=verdict.valid,
        attempts_per_job=float(jobs["attempts"].mean()) if len(jobs) else math.nan,
        dead_letter_rate=verdict.dead_lettered / max(verdict.submitted, 1),
        throughput_per_s=len(finished) / span if span and span > 0 else math.nan,
        wait_s=Percentiles.of(steady["wait_s"]),
        sojourn_s=Percentiles.of(steady["sojourn_s"]),
        littles_law=LittlesLaw.measure(finished, samples),
        arrival_rate_per_s=arrivals,
        service_s=service,
        overhead_per_attempt_s=overhead,
        theory=predictions(workload, setup, faults),
        theory_at_measured_service=predictions(
            workload,
            setup,
            faults,
            mean_service_s=effective_service_s(service, overhead),
            arrival_rate_per_s=arrivals,
        ),
        workers=setup.workers,
        wall_s=wall_s,
        time_scale=workload.time_scale,
        warnings=tuple(warnings),
        faults_applied=tuple(faults_applied),
    )


def flatten(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary (e.g. :meth:`RunSummary.as_dict`) -> flat ``a.b`` keys, for a tidy
    DataFrame row or CSV.

    Example:
        >>> flatten({"wait_s": {"mean": 1.0}, "valid": True})
        {'wait_s.mean': 1.0, 'valid': True}
    """
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
