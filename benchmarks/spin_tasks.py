"""A CPU-bound pure-Python task for ``benchmarks.http_busy_workers``: it holds the interpreter
lock for its whole run, as parsing, rendering or number crunching in Python does."""

from __future__ import annotations

import time
from typing import Any

from jobsim import task


@task("spin")
def spin(payload: Any) -> None:
    """Compute in Python for ``payload["ms"]`` milliseconds of wall time."""
    end = time.perf_counter() + payload["ms"] / 1000
    x = 0
    while time.perf_counter() < end:
        for i in range(200):
            x += i
