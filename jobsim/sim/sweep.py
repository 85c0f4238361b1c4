"""``sweep`` a grid of runs into one tidy DataFrame, one row per run."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping, Sequence
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
) -> pd.DataFrame:
    """Run every combination of ``grid`` and return one tidy row per run.

    Keys of ``grid`` name fields of :class:`Workload` (``jobs``, ``fail_probability``,
    ``seed`` ...) or :class:`Setup` (``workers``, ``mode`` ...), or ``rate_per_s`` for a
    Poisson arrival rate. Each row is the grid point and the flattened
    :meth:`~jobsim.sim.summary.RunSummary.as_dict` (``wait_s.mean``, ``theory.wait_s`` ...).

    Example:
        >>> sweep({"workers": [1, 2, 4], "seed": [1, 2]})  # doctest: +SKIP
    """
    workload, setup = workload or Workload(), setup or Setup()
    keys = list(grid)
    rows = []
    combos = list(itertools.product(*(grid[k] for k in keys)))
    for n, values in enumerate(combos, 1):
        point = dict(zip(keys, values, strict=True))
        w, s = grid_point(point, workload, setup)
        if progress:
            print(f"[{n}/{len(combos)}] {point}", file=sys.stderr, flush=True)
        result = run(w, faults, s)
        rows.append({**point, **flatten(result.summary.as_dict())})
    return pd.DataFrame(rows)


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
