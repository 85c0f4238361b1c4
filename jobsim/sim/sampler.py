"""A thread that samples how many jobs are in the system during a run."""

from __future__ import annotations

import threading
import time

import redis

from jobsim.queue import JobQueue


class Sampler(threading.Thread):
    """Samples how many jobs are in the system (queued, processing, retrying) every few
    milliseconds, from the queue's own counts: an L independent of the timestamps.

    Args:
        queue: the run's queue.
        started: the run's start, ``time.monotonic()``.
        every_s: the sampling period, wall seconds.
    """

    def __init__(self, queue: JobQueue, started: float, every_s: float = 0.005) -> None:
        super().__init__(name="jobsim-sampler", daemon=True)
        self.queue, self.started, self.every_s = queue, started, every_s
        self.samples: list[tuple[float, int]] = []  # (seconds since start, jobs in system)
        self._done = threading.Event()

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._done.set()
        self.join()

    def run(self) -> None:
        """Sample until stopped."""
        while not self._done.wait(self.every_s):
            try:
                active = self.queue.stats().active
            except redis.RedisError:
                continue  # Redis restarting: no sample
            self.samples.append((time.monotonic() - self.started, active))
