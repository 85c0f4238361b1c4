"""``sweep`` a grid of runs into one tidy DataFrame, one row per run.

The runs of a sweep are independent, so they can go to any
:class:`concurrent.futures.Executor`: the default runs them here, one after another; a
``ProcessPoolExecutor`` spreads them over local cores; a cluster's executor spreads them
over machines (Dask: ``distributed.Client(...).get_executor()``; Ray:
``ray.util.multiprocessing.Pool`` or any executor wrapper). Each run is seeded by its grid
point alone, so on the virtual backend the rows are the same whatever runs them (only the
``wall_s`` column, the time a run took, differs).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any

import pandas as pd

from jobsim.sim.faults import FaultPlan
from jobsim.sim.runner import run
from jobsim.sim.setup import Setup
from jobsim.sim.summary import flatten
from jobsim.sim.workload import Constant, Poisson, Workload


def sweep(
    grid: Mapping[str, Sequence[Any]],
    *,
    workload: Workload | None = None,
    faults: FaultPlan | None = None,
    setup: Setup | None = None,
    progress: bool = False,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Run every combination of ``grid`` and return one tidy row per run.

    Keys of ``grid`` name fields of :class:`Workload` (``jobs``, ``fail_probability``,
    ``seed`` ...) or :class:`Setup` (``workers``, ``mode`` ...), or ``rate_per_s`` for a
    Poisson arrival rate. Each row is the grid point and the flattened
    :meth:`~jobsim.sim.summary.RunSummary.as_dict` (``wait_s.mean``, ``theory.wait_s`` ...),
    in grid order whatever the executor.

    Args:
        executor: runs the grid's points (its ``map``), e.g.
            ``concurrent.futures.ProcessPoolExecutor(4)``, or a Dask or Ray client's
            executor; None runs them here, one after another. Real-queue runs in parallel
            share the machine, so their waits include each other's load: use an executor
            for the virtual backend, or for real runs on separate machines.

    Example:
        >>> sweep({"workers": [1, 2, 4], "seed": [1, 2]})  # doctest: +SKIP
    """
    workload, setup = workload or Workload(), setup or Setup()
    keys = list(grid)
    combos = list(itertools.product(*(grid[k] for k in keys)))
    points = [dict(zip(keys, values, strict=True)) for values in combos]
    tasks = [(point, *grid_point(point, workload, setup), faults) for point in points]
    if executor is None:
        rows: Iterable[dict[str, Any]] = map(sweep_row, tasks)
    else:
        rows = executor.map(sweep_row, tasks)
    return pd.DataFrame(list(_reported(rows, points, progress)))


def sweep_row(
    task: tuple[Mapping[str, Any], Workload, Setup, FaultPlan | None],
) -> dict[str, Any]:
    """One row of a sweep: the grid point, then the run's flattened summary. A plain
    top-level function of picklable values, so any executor can run it."""
    point, workload, setup, faults = task
    result = run(workload, faults, setup)
    return {**point, **flatten(result.summary.as_dict())}


def _reported(
    rows: Iterable[dict[str, Any]], points: list[dict[str, Any]], progress: bool
) -> Iterator[dict[str, Any]]:
    for n, (row, point) in enumerate(zip(rows, points, strict=True), 1):
        if progress:
            print(f"[{n}/{len(points)}] {point}", file=sys.stderr, flush=True)
        yield row


def grid_point(
    point: Mapping[str, Any], workload: Workload, setup: Setup
) -> tuple[Workload, Setup]:
    """``workload`` and ``setup`` with the fields one grid point names replaced.

    Raises:
        ValueError: a key names no field, or ``rate_per_s`` with arrivals that have no rate.
    """
    w_fields = {k: v for k, v in point.items() if k in Workload.__dataclass_fields__}
    s_fields = {k: v for k, v in point.items() if k in Setup.__dataclass_fields__}
    if "rate_per_s" in point:
        if not isinstance(workload.arrival, (Poisson, Constant)):
            raise ValueError("rate_per_s sweeps need Poisson or Constant arrivals")
        w_fields["arrival"] = replace(workload.arrival, rate_per_s=point["rate_per_s"])
    unknown = set(point) - set(w_fields) - set(s_fields) - {"rate_per_s"}
    if unknown:
        raise ValueError(f"sweep keys must name Workload or Setup fields: {sorted(unknown)}")
    return replace(workload, **w_fields), replace(setup, **s_fields)
