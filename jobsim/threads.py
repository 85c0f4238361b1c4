"""Thread workers and their supervisor: the backend of a ``thread`` pool, and of the one
worker thread inside each worker process.

The supervisor heartbeats the leases the threads hold, keeps the worker registry fresh,
sends results that wait behind a long job, and enforces per-job timeouts. A thread cannot
be killed: a hung job's lease is failed as a timeout (its late result is fenced) and the
rest of that worker's leases are taken back, so no other job waits behind it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time

import redis

from jobsim.books import Holdings, take_back
from jobsim.pool_settings import PoolSettings
from jobsim.queue import JobQueue
from jobsim.scripts import Dequeued
from jobsim.worker import Report, ThreadWorker

log = logging.getLogger("jobsim.threads")


class ThreadGroup:
    """``settings.concurrency`` worker threads of pool ``pool_id`` and their supervisor.

    Args:
        queue: the queue they serve.
        settings: how the workers behave.
        pool_id: prefix of the worker ids.
        report: where the (single) worker reports its leases, in a worker process; its
            parent enforces the timeouts there.
    """

    def __init__(
        self, queue: JobQueue, settings: PoolSettings, pool_id: str, report: Report | None = None
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.pool_id = pool_id
        self.report = report
        self.stop_key = queue.keys.stop(pool_id)
        self.stopping = threading.Event()  # workers take no new jobs
        self.discarded: list[str] = []
        self.threads: list[ThreadWorker] = []
        self._halt = threading.Event()  # the supervisor exits (after the workers stopped)
        self._wakeup = threading.Event()
        self._rng = random.Random(f"{settings.seed}:supervisor")
        self._supervisor: threading.Thread | None = None
        self._started_at = 0.0

    # --- WorkerHost -----------------------------------------------------------------------

    def take_back(self, worker_id: str, holdings: Holdings, *, outcome: str, error: str) -> None:
        """Settle or give back a worker's leases (see :func:`jobsim.books.take_back`)."""
        take_back(
            self.queue.leases, worker_id, holdings, outcome=outcome, error=error,
            backoff_us=self._backoff_us,
        )  # fmt: skip

    def backoff_s(self, job: Dequeued, rng: random.Random) -> float:
        """The delay before the job's next attempt, from the queue's retry policy."""
        return self.queue.config.retry.delay_s(
            job.backoff_attempt, previous_s=job.previous_delay_s, rng=rng
        )

    def nudge(self) -> None:
        """Wake the supervisor."""
        self._wakeup.set()

    def _backoff_us(self, job: Dequeued) -> int:
        return round(self.backoff_s(job, self._rng) * 1e6)

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def worker_ids(self) -> list[str]:
        """Ids of the threads, as they appear in the registry."""
        return [t.worker_id for t in self.threads]

    def start(self) -> None:
        """Start the threads and the supervisor."""
        self._started_at = time.time()
        self.queue.client.delete(self.stop_key)
        n = self.settings.concurrency
        self.threads = [ThreadWorker(self, i, self.report) for i in range(n)]
        for thread in self.threads:
            thread.start()
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"jobsim-supervisor-{self.pool_id}", daemon=True
        )
        self._supervisor.start()

    def stop(self, grace_s: float) -> None:
        """No new jobs; in-flight ones get ``grace_s``, then their leases are given back."""
        self.stopping.set()
        deadline = time.monotonic() + grace_s
        try:
            self.queue.leases.wake_stopping(self.stop_key, len(self.threads))
        except redis.RedisError as exc:
            log.warning("could not wake idle workers (they wake within 2 s): %s", exc)
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for thread in self.threads:
            if thread.is_alive():
                self.take_back(
                    thread.worker_id,
                    thread.take_holdings(),
                    outcome="interrupted",
                    error="worker pool stopped before the job finished",
                )
        self._halt.set()
        self._wakeup.set()
        if self._supervisor is not None:
            self._supervisor.join()

    # --- killing a thread on purpose ------------------------------------------------------

    def busy_worker_ids(self) -> list[str]:
        """Threads running a job now (and not already told to die)."""
        return [t.worker_id for t in self.threads if t.running and not t.crash_requested]

    def kill(self, worker_id: str) -> bool:
        """Make a thread lose every lease when its running job ends; whether it exists."""
        thread = next((t for t in self.threads if t.worker_id == worker_id), None)
        if thread is not None:
            thread.crash_requested = True
        return thread is not None

    # --- supervision ----------------------------------------------------------------------

    def _supervise(self) -> None:
        beat_every = self.queue.config.lease.heartbeat_every_s
        next_beat = 0.0
        while not self._halt.is_set():
            try:
                now = time.monotonic()
                if now >= next_beat:
                    self._heartbeat()
                    next_beat = now + beat_every
                self._wait(next_beat - now, now)
            except Exception:  # the supervisor must outlive any one failure
                log.exception("supervisor of pool %s", self.pool_id)
                self._halt.wait(0.5)

    def _wait(self, until_beat: float, now: float) -> None:
        if self.report is None:  # in a worker process the parent enforces timeouts
            self._enforce_timeouts(now)
        deadlines = [self._settle_stale(now)]
        deadlines += [r.next_deadline() for t in self.threads if (r := t.running) is not None]
        wait = min([until_beat, *(d - now for d in deadlines if d is not None)])
        self._wakeup.wait(max(wait, 0.001))
        self._wakeup.clear()

    def _settle_stale(self, now: float) -> float | None:
        """Send results that waited too long behind a long job; return the next such time."""
        upcoming = None
        for thread in self.threads:
            since = thread.unsettled_since()
            if since is None or thread.running is None:
                continue  # between jobs a worker sends its own results
            due = since + self.settings.settle_after_s
            if now >= due:
                results = thread.take_unsettled()
                try:
                    self.queue.leases.exchange(thread.worker_id, 0, results.done, results.failed)
                except redis.RedisError as exc:
                    log.warning("could not send %s's results: %s", thread.worker_id, exc)
            elif upcoming is None or due < upcoming:
                upcoming = due
        return upcoming

    def _heartbeat(self) -> None:
        for thread in self.threads:
            running = thread.running
            info = self._registry_entry([running.job.id] if running else [])
            try:
                beat = self.queue.leases.beat(thread.worker_id, thread.leases(), info)
            except redis.RedisError as exc:
                log.warning("heartbeat of %s failed: %s", thread.worker_id, exc)
                continue
            if beat.cancelling:
                thread.cancel(set(beat.cancelling), self.settings.grace_s)
            for job_id in beat.lost:
                log.info("worker %s lost the lease of job %s", thread.worker_id, job_id)

    def _registry_entry(self, running: list[str]) -> str:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "mode": "thread" if self.report is None else "process",
                "started_at": self._started_at,
                "heartbeat_s": self.queue.config.lease.heartbeat_every_s,
                "running": running,
            }
        )

    def _enforce_timeouts(self, now: float) -> None:
        """Take back the leases of a thread whose job ran past its timeout, or past the
        grace period after its cancel (the job then ends cancelled)."""
        for thread in self.threads:
            running = thread.running
            due = running.next_deadline() if running is not None else None
            if running is None or due is None or now < due:
                continue
            holdings = thread.take_holdings_if_running(running)
            if holdings is not None:
                cancelled = running.cancel_deadline is not None and now >= running.cancel_deadline
                self.take_back(
                    thread.worker_id,
                    holdings,
                    outcome="cancelled" if cancelled else "timeout",
                    error="the thread was left running; its result will be fenced",
                )
