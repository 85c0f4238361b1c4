"""Numbers the HTTP API derives from a queue: throughput for ``/stats``, and the Prometheus
collector behind ``/metrics``.

Nothing here is counted in the API process itself, so several API processes (and workers
anywhere) report the same queue-wide numbers:

- counters (``jobsim_jobs_{submitted,completed,failed,retried}_total``) are the queue's running
  totals in Redis (:meth:`jobsim.queue.JobQueue.stats`), read at scrape time;
- gauges are read at scrape time: ``jobsim_queue_depth{status=...}`` the jobs waiting or
  running (scheduled, queued, processing, retrying), ``jobsim_jobs_retained{status=...}`` the
  finished records kept (completed, failed, cancelled: retention drops them, so they are not
  totals), ``jobsim_workers_alive``;
- histograms of wait (submit to first start) and run time (each attempt's start to end) are
  fed from the records of jobs that finished since the previous scrape: the collector keeps
  a cursor into the ``completed`` and dead-letter sets, whose scores are the Redis ``TIME``
  of finishing (µs), and reads the attempt logs of the jobs past it. Each finished job is
  observed once per process; records dropped by retention before a scrape are not observed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import cast

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobsim.api.views import Throughput
from jobsim.connection import server_time_s
from jobsim.models import ACTIVE, Job, JobStatus
from jobsim.queue import JobQueue

COUNTERS = ("submitted", "completed", "failed", "retried")
"""Running totals exported as ``jobsim_jobs_<name>_total``."""
TIME_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_SCAN = 10_000  # finished jobs read per set and scrape; the rest wait for the next scrape


def server_time_us(queue: JobQueue) -> int:
    """Redis ``TIME`` in microseconds: the clock every score of the queue is written in."""
    return round(server_time_s(queue.client) * 1_000_000)


def throughput(queue: JobQueue, window_s: float) -> Throughput:
    """Jobs completed and dead-lettered in the last ``window_s`` seconds of Redis time.

    Args:
        queue: the queue to measure.
        window_s: the window length in seconds.

    Returns:
        Counts and rates per second over the window.
    """
    since = f"({server_time_us(queue) - round(window_s * 1e6)}"
    pipe = queue.client.pipeline(transaction=False)
    pipe.zcount(queue.keys.completed, since, "+inf")
    pipe.zcount(queue.keys.dead, since, "+inf")
    completed, failed = (int(n) for n in pipe.execute())
    return Throughput(
        window_s=window_s,
        completed=completed,
        failed=failed,
        completed_per_s=completed / window_s,
        failed_per_s=failed / window_s,
    )


class QueueCollector(Collector):
    """Prometheus metrics of one queue; register it on a per-app ``CollectorRegistry``.

    Example:
        >>> registry = CollectorRegistry()                        # doctest: +SKIP
        >>> registry.register(QueueCollector(queue))              # doctest: +SKIP

    Args:
        queue: the queue to report.
    """

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self._lock = threading.Lock()  # scrapes may run concurrently
        self._cursors: dict[str, int] | None = None
        labels = ["queue"]
        self._wait = Histogram(
            "jobsim_job_wait_seconds",
            "Seconds from submit to the first attempt's start, per finished job.",
            labels,
            registry=None,
            buckets=TIME_BUCKETS_S,
        )
        self._run = Histogram(
            "jobsim_job_run_seconds",
            "Seconds from an attempt's start to its end, per attempt of a finished job.",
            [*labels, "outcome"],
            registry=None,
            buckets=TIME_BUCKETS_S,
        )

    def start(self) -> None:
        """Observe only jobs that finish from now on (called when the service starts)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        now = server_time_us(self.queue)
        self._cursors = {self.queue.keys.completed: now, self.queue.keys.dead: now}

    def collect(self) -> Iterator[Metric]:
        """Read the queue's totals and depths, and observe jobs finished since last time."""
        queue = self.queue
        stats = queue.stats()
        alive = sum(w.alive for w in queue.workers())
        with self._lock:
            self._observe_finished()
        for name in COUNTERS:
            counter = CounterMetricFamily(
                f"jobsim_jobs_{name}", f"Jobs {name} since the queue was created.", labels=["queue"]
            )
            counter.add_metric([queue.name], stats.totals.get(name, 0))
            yield counter
        depth = GaugeMetricFamily(
            "jobsim_queue_depth",
            "Jobs waiting or running now, per status.",
            labels=["queue", "status"],
        )
        retained = GaugeMetricFamily(
            "jobsim_jobs_retained",
            "Finished job records kept now, per status (retention drops old completed ones; "
            "failed is the dead-letter queue). Use jobsim_jobs_*_total for rates.",
            labels=["queue", "status"],
        )
        for status, count in stats.by_status().items():
            family = depth if JobStatus(status) in ACTIVE else retained
            family.add_metric([queue.name, status], count)
        yield depth
        yield retained
        workers = GaugeMetricFamily(
            "jobsim_workers_alive", "Workers of the queue that heartbeat.", labels=["queue"]
        )
        workers.add_metric([queue.name], alive)
        yield workers
        yield from self._wait.collect()
        yield from self._run.collect()

    def _observe_finished(self) -> None:
        if self._cursors is None:  # an app served without its lifespan: start now
            self._reset()
            return
        for key, cursor in self._cursors.items():
            self._cursors[key] = self._observe_since(key, cursor)

    def _observe_since(self, key: str, cursor: int) -> int:
        client = self.queue.client
        rows = cast(
            list[tuple[str, float]],
            client.zrangebyscore(key, f"({cursor}", "+inf", start=0, num=_SCAN, withscores=True),
        )
        if len(rows) == _SCAN and rows[0][1] != rows[-1][1]:
            # A full page may cut a group of jobs finished in the same µs: leave that group
            # for the next scrape, whose exclusive lower bound is the last whole score.
            last = rows[-1][1]
            rows = [r for r in rows if r[1] != last]
        if not rows:
            return cursor
        pipe = client.pipeline(transaction=False)
        for job_id, _ in rows:
            pipe.hgetall(self.queue.keys.job(job_id))
        for (job_id, _), fields in zip(rows, pipe.execute(), strict=True):
            if fields:
                self._observe(Job.from_hash(job_id, fields))
        return int(rows[-1][1])

    def _observe(self, job: Job) -> None:
        if job.status not in (JobStatus.COMPLETED, JobStatus.FAILED) or not job.attempt_log:
            return
        name = self.queue.name
        first = job.attempt_log[0].started_at
        if first is not None:
            self._wait.labels(name).observe(max(0.0, first - job.submitted_at))
        for attempt in job.attempt_log:
            if attempt.started_at is not None and attempt.ended_at is not None:
                run_s = max(0.0, attempt.ended_at - attempt.started_at)
                self._run.labels(name, attempt.outcome.value).observe(run_s)
