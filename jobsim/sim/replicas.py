"""Replications and confidence intervals: how a notebook states that a measurement agrees
with a formula.

One run's mean wait is a single draw of a random variable; several seeded replications
give a Student-t interval for its mean, and :func:`agreement` prints one deterministic line
comparing that interval with the nominal theory. On the virtual backend (bit-identical per
seed) the line is the same on any machine, however busy.

Example:
    >>> iv = t_interval([0.98, 1.02, 1.01, 0.99])
    >>> round(iv.mean, 3), round(iv.half_width, 3)
    (1.0, 0.029)
    >>> agreement("wait", iv, 1.0)
    'wait 1.000 ± 0.029 (95% CI, 4 runs) vs theory 1.000: off by 0.0%, 0.0 SE: PASS'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from jobsim.sim.faults import FaultPlan
from jobsim.sim.result import RunResult
from jobsim.sim.runner import run
from jobsim.sim.setup import Setup
from jobsim.sim.workload import Workload

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
         16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 24: 2.064, 29: 2.045,
         39: 2.023, 59: 2.001, 119: 1.980}  # fmt: skip
"""Student-t 0.975 quantiles by degrees of freedom (a two-sided 95% interval)."""


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (a table lookup,
    rounded down to the nearest tabled ``df``, so the interval errs wide; 1.960 beyond)."""
    if df < 1:
        raise ValueError(f"need at least 1 degree of freedom, got {df}")
    if df > max(T_975):
        return 1.960
    return T_975[max(k for k in T_975 if k <= df)]


@dataclass(frozen=True)
class Interval:
    """A mean and the half-width of its two-sided 95% Student-t interval over ``n`` runs."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        """Lower end of the interval."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """Upper end of the interval."""
        return self.mean + self.half_width

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval (ends included)."""
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.half_width:.3f}"


def t_interval(values: Sequence[float] | np.ndarray | pd.Series) -> Interval:
    """The 95% t-interval for the mean of independent replications (NaNs dropped; a single
    value gets an infinite half-width)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return Interval(math.nan, math.nan, 0)
    if arr.size == 1:
        return Interval(float(arr[0]), math.inf, 1)
    sd = float(arr.std(ddof=1))
    return Interval(float(arr.mean()), t_quantile_975(arr.size - 1) * sd / math.sqrt(arr.size),
                    int(arr.size))  # fmt: skip


def agreement(
    label: str,
    measured: Interval,
    expected: float,
    *,
    tolerance: float = 0.05,
    k: float = 4.0,
    digits: int = 3,
) -> str:
    """One line: the 95% interval, the theory, the error in per cent and in standard errors
    of the mean, and PASS when it is within ``k`` standard errors (the repository's 4-SE
    bands, docs/experiments.md) or within ``tolerance`` (a fraction) of the theory.

    The standard error is the interval's half-width over its t quantile. The tolerance keeps
    a very tight interval from failing on a bias far below what a notebook teaches (the
    warm-up a finite run keeps); the printed interval shows how tight the agreement is.
    """
    error = (measured.mean - expected) / expected if expected else math.nan
    se = measured.half_width / t_quantile_975(max(measured.n - 1, 1))
    z = abs(measured.mean - expected) / se if se > 0 else math.inf
    ok = z <= k or (math.isfinite(error) and abs(error) <= tolerance)
    return (
        f"{label} {measured.mean:.{digits}f} ± {measured.half_width:.{digits}f} "
        f"(95% CI, {measured.n} runs) vs theory {expected:.{digits}f}: off by "
        f"{abs(error):.1%}, {z:.1f} SE: {'PASS' if ok else 'FAIL'}"
    )


Measure = Callable[[RunResult], Mapping[str, float]]


def mean_wait(result: RunResult) -> dict[str, float]:
    """The run's mean wait after the warm-up, model seconds (``wait_s``)."""
    return {"wait_s": result.summary.wait_s.mean}


def replicate(
    workload: Workload,
    setup: Setup,
    faults: FaultPlan | None = None,
    *,
    runs: int,
    measure: Measure = mean_wait,
) -> pd.DataFrame:
    """Run ``workload`` ``runs`` times with seeds ``workload.seed + k`` and return one row
    per run: ``seed`` and what ``measure`` takes from each result.

    Example:
        >>> frame = replicate(Workload(jobs=200), Setup(backend="virtual"), runs=3)
        >>> list(frame.columns), len(frame)
        (['seed', 'wait_s'], 3)
    """
    rows = []
    for k in range(runs):
        seeded = replace(workload, seed=workload.seed + k)
        rows.append({"seed": seeded.seed, **measure(run(seeded, faults, setup))})
    return pd.DataFrame(rows)


def intervals(frame: pd.DataFrame) -> dict[str, Interval]:
    """The t-interval of every column of a :func:`replicate` frame except ``seed``."""
    return {str(col): t_interval(frame[col]) for col in frame.columns if col != "seed"}
