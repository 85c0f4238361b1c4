"""A thread that applies a fault plan's timed faults at their model times: worker crashes
(through the pool's public chaos seam, :meth:`~jobsim.pool.WorkerPool.busy_worker_ids` and
:meth:`~jobsim.pool.WorkerPool.kill_worker`), Redis connection drops, pauses and restarts,
the queue's own pause windows (:meth:`JobQueue.pause`, then ``resume``) and cancels."""

from __future__ import annotations

import random
import threading
import time

import redis

from jobsim.connection import is_embedded
from jobsim.errors import JobFinishedError, JobNotFoundError
from jobsim.localredis import LocalRedis
from jobsim.pool import WorkerPool
from jobsim.queue import JobQueue
from jobsim.sim.faults import FaultPlan
from jobsim.sim.job import job_id
from jobsim.sim.workload import Workload


class Injector(threading.Thread):
    """Applies the plan's timed faults at their model times.

    Args:
        faults: the plan.
        workload: the run's workload (its horizon, seed and time scale).
        pool: the workers a crash kills one of.
        client: the run's Redis client.
        server: the server this run started, if any (the only kind it may restart).
        started: the run's start, ``time.monotonic()``.
        queue: the run's queue, which ``queue_pauses`` pause and resume.
    """

    def __init__(
        self,
        faults: FaultPlan,
        workload: Workload,
        pool: WorkerPool,
        client: redis.Redis,
        server: LocalRedis | None,
        started: float,
        queue: JobQueue | None = None,
    ) -> None:
        super().__init__(name="jobsim-fault-injector", daemon=True)
        horizon = max((j.arrival_s for j in workload.plan()), default=0.0)
        self.timeline = faults.timeline(horizon, workload.seed)
        self.scale = workload.time_scale
        self.pool, self.client, self.server, self.started = pool, client, server, started
        self.queue = queue
        self.rng = random.Random(f"{faults.seed}:injector")
        self.events: list[tuple[float, str, str]] = []  # (model time, kind, what happened)
        self._done = threading.Event()

    def stop(self) -> None:
        """Stop, and record the faults the run ended before."""
        self._done.set()
        self.join()
        for at_s, kind, _ in self.timeline[len(self.events) :]:
            self.events.append((at_s, kind, "not applied: the run ended first"))

    def run(self) -> None:
        """Apply each fault at its time, until stopped."""
        for at_s, kind, arg in self.timeline:
            wait = self.started + at_s * self.scale - time.monotonic()
            if wait > 0 and self._done.wait(wait):
                return
            detail = self._inject(kind, arg)
            if detail is None:
                return  # the run ended before a worker was busy; stop() records it
            self.events.append((at_s, kind, detail))

    def _crash(self) -> str | None:
        """Kill a busy worker, waiting for one to be busy (a crash is mid-job)."""
        while not self._done.is_set():
            busy = self.pool.busy_worker_ids()
            if busy:
                worker = self.rng.choice(busy)
                self.pool.kill_worker(worker)
                return f"killed worker {worker}"
            self._done.wait(0.002)
        return None

    def _inject(self, kind: str, arg: float) -> str | None:
        embedded = is_embedded(self.client)
        try:
            if kind == "crash":
                return self._crash()
            if kind in ("queue_pause", "resume", "cancel") and self.queue is None:
                return "skipped: no queue"
            if kind == "cancel" and self.queue is not None:
                return _cancel(self.queue, job_id(int(arg)))
            if kind == "queue_pause" and self.queue is not None:
                self.queue.pause()
                return f"queue paused for {arg:g} model s"
            if kind == "resume" and self.queue is not None:
                self.queue.resume()
                return "queue resumed"
            if embedded and kind in ("drop", "pause"):
                return "skipped: the embedded backend has no client connections"
            if kind == "drop":
                killed = self.client.client_kill_filter(_type="normal", skipme=True)
                return f"{killed} connections killed"
            if kind == "pause":
                self.client.client_pause(round(arg * self.scale * 1000), all=True)
                return f"paused {arg * self.scale:.3f} s"
            if self.server is None:
                return "skipped: only a server this run started (backend='local') can restart"
            self.server.restart(hard=True)
            return f"restarted ({self.server.persistence})"
        except redis.RedisError as exc:
            return f"failed: {exc}"


def _cancel(queue: JobQueue, job: str) -> str:
    """Cancel ``job``, saying what happened (a cancel of a job not yet submitted or
    already finished is not applied)."""
    try:
        queue.cancel(job)
    except JobNotFoundError:
        return f"not applied: {job} is not submitted yet"
    except JobFinishedError as exc:
        return f"not applied: {job} is already {exc.status}"
    return f"cancel of {job} requested"
