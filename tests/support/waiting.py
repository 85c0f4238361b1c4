"""Waiting in tests for something another thread or process makes true."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout_s: float = 20.0) -> None:
    """Poll ``predicate`` every 10 ms until it is true.

    Raises:
        AssertionError: it was still false after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout_s:g} s")
        time.sleep(0.01)
