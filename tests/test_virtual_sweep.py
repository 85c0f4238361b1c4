"""Sweeps on the virtual backend give the same rows whatever executor runs them."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pandas as pd

from jobsim.retry import RetryPolicy
from jobsim.sim import FaultPlan, Poisson, Setup, Workload, sweep

GRID = {"workers": [1, 2, 4], "seed": [1, 2], "fail_probability": [0.0, 0.3]}


def _sweep(executor: object = None) -> pd.DataFrame:
    frame = sweep(
        GRID,
        workload=Workload(jobs=400, arrival=Poisson(rate_per_s=0.8), max_retries=2),
        faults=FaultPlan(poison={3: "fail"}),
        setup=Setup(backend="virtual", retry=RetryPolicy(kind="full", base_s=0.05)),
        executor=executor,  # type: ignore[arg-type]
    )
    return frame.drop(columns=["wall_s"])  # the time each run took: the one column that varies


def test_a_process_pool_gives_exactly_the_serial_rows() -> None:
    serial = _sweep()
    assert len(serial) == 12
    assert serial["wait_s.mean"].nunique() > 6  # the points differ, so order is tested
    with ProcessPoolExecutor(2) as pool:
        parallel = _sweep(pool)
    pd.testing.assert_frame_equal(serial, parallel, check_exact=True)
    with ThreadPoolExecutor(3) as threads:
        pd.testing.assert_frame_equal(serial, _sweep(threads), check_exact=True)
    assert list(serial[["workers", "seed"]].itertuples(index=False, name=None))[:3] == [
        (1, 1), (1, 1), (1, 2)
    ]  # fmt: skip
