"""Peer job queues measured beside jobsim on the same redis-server, each with its
documented worker.

Every module in this package defines::

    NAME: str                      # as printed in the table, e.g. "RQ"
    NOTE: str                      # one line: which worker, and how concurrency is set

    def available() -> bool:       # the library imports (installed with '.[peers]')

    def enqueue(url: str, n: int) -> float:
        # Enqueue n no-op jobs one call at a time; return jobs/s.

    def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
        # scenario "noop": n no-op jobs; "retry_once": each job fails on its first attempt
        # and succeeds on its second (retry delay 0).
        # Protocol: enqueue (untimed) a marker job first, then the n jobs; start the
        # library's documented worker with `workers` concurrency; the marker's task writes
        # time.time() to the Redis key "bench:t0". Poll the library's own state (at most
        # every 5 ms) until all n + 1 jobs are finished; return n / (t_done - t0) in jobs/s.
        # Return None when the library cannot run the scenario at that concurrency. Stop
        # every worker process before returning, also on error.

The runner (benchmarks/run.py) flushes the server between runs, so a module may use any
keys it likes.
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = ("rq_peer", "arq_peer", "saq_peer", "huey_peer", "dramatiq_peer", "celery_peer")


def installed() -> list[ModuleType]:
    """The peer modules whose library is installed."""
    found = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"benchmarks.peers.{name}")
        except ImportError:
            continue
        if module.available():
            found.append(module)
    return found
