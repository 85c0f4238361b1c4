"""The priority job queue: submit, inspect, and dead-letter operations.

Producers and inspectors use the methods here; workers use ``queue.leases``
(:class:`jobsim.leases.Leases`), the worker side of the same queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from jobsim.clusters import mapped_errors
from jobsim.config import QueueConfig
from jobsim.connection import shown_url
from jobsim.control import Control
from jobsim.dead_letters import DeadLetters
from jobsim.errors import (
    DrainTimeoutError,
)
from jobsim.inspection import Inspector
from jobsim.keys import Keys
from jobsim.leases import Leases
from jobsim.limits import TaskLimits
from jobsim.models import (
    Job,
    JobStatus,
    QueueStats,
    WorkerInfo,
)
from jobsim.requests import (
    JobRequest,
    batch_args,
    duplicates_named,
    validated,
)
from jobsim.scripts import Scripts
from jobsim.tasks import TaskRegistry
from jobsim.tasks import registry as default_registry

_CHUNK = 1000  # keys per DEL in delete()


class JobQueue:
    """A priority job queue in Redis.

    Example:
        >>> queue = JobQueue(jobsim.connect(), name="doc")           # doctest: +SKIP
        >>> job_id = queue.submit("sleep", {"seconds": 0.1}, priority=5)  # doctest: +SKIP

    Args:
        client: from :func:`jobsim.connect`.
        name: the queue's name; all its keys carry it as their hash tag.
        config: queue settings. If they name rate or concurrency limits, creating the
            queue writes them to Redis, replacing its limits table: every worker of the
            queue obeys that table, whatever settings it was started with.
        registry: the task registry submit validates against.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str = "default",
        config: QueueConfig | None = None,
        *,
        registry: TaskRegistry | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.keys = Keys(name)
        self.config = config or QueueConfig()
        self.registry = registry or default_registry
        self._scripts = Scripts(
            client,
            self.keys,
            replicas=self.config.replicas,
            replica_timeout_ms=self.config.replica_timeout_ms,
        )
        self._shown = shown_url(client)  # for errors: password masked
        self.leases = Leases(client, self.keys, self.config)
        """The worker side of this queue (leasing, settling, heartbeats)."""
        self.control = Control(client, self.keys, self._scripts)
        """Cancel, wait and pause (also offered as this queue's own methods)."""
        self.inspect = Inspector(client, self.keys, self._scripts)
        """Read-only calls: records, ids per status, counts (also this queue's own methods)."""
        self.dead = DeadLetters(client, self._scripts, self.config.band_us)
        """Requeue and purge dead letters (also offered as this queue's own methods)."""
        if (table := self.config.limits) is not None:
            for task in table:  # as submit does: a limit on a task nobody registered is a typo
                self.registry.get(task)
            self._scripts.set_limits([(task, *t.encoded()) for task, t in table.items()])

    def __repr__(self) -> str:
        return f"JobQueue(name={self.name!r})"

    # --- producing ------------------------------------------------------------------------

    def submit(
        self,
        task: str,
        payload: Any = None,
        *,
        priority: int = 0,
        max_retries: int | None = None,
        job_id: str | None = None,
        delay_s: float | None = None,
        run_at: float | None = None,
    ) -> str:
        """Submit one job, to run now or later.

        Example:
            >>> queue.submit("resize", {"width": 640}, delay_s=30)      # doctest: +SKIP

        Args:
            task: a registered task name.
            payload: one JSON document (dict, list, str, number, bool or None).
            priority: ``PRIORITY_MIN..PRIORITY_MAX``; higher is served first.
            max_retries: retries after the first attempt (default: the queue's).
            job_id: an id of your own (letters, digits, ``_.:-``); default a random one.
                Submitting the same id with the same task and payload again is a no-op, so a
                submit is safe to retry — while the job's record is kept: once retention
                (:class:`jobsim.Retention`) has dropped a completed record, the same id is a
                new job. Keep records at least as long as producers may retry.
            delay_s: run no sooner than this many seconds from now; the job is
                ``scheduled`` until then, then queued at its priority.
            run_at: run no sooner than this time (epoch seconds of Redis ``TIME``, the clock
                :attr:`Job.submitted_at` uses); not together with ``delay_s``.

        Returns:
            The job id.

        Raises:
            InvalidInputError: a subclass naming the bad argument; nothing is written.
        """
        flat: list[Any] = []
        job_id = validated(
            JobRequest(task, payload, priority, max_retries, job_id, delay_s, run_at),
            self.config,
            self.registry,
            flat,
        )
        self._write(flat)
        return job_id

    def submit_many(self, jobs: Iterable[JobRequest]) -> list[str]:
        """Submit many jobs in one atomic round trip: all of them or none.

        Every job is validated before anything is sent, and the batch is written by one
        script call, so no concurrent submit can leave part of it written. A batch is
        limited to ``jobsim.requests.MAX_BATCH_JOBS`` jobs and ``MAX_BATCH_BYTES`` of
        encoded payloads (Redis runs the whole batch as one step, blocking other clients
        meanwhile: about 4 µs per job on a real server).

        Raises:
            InvalidInputError: for the first bad job, a repeated ``job_id``, an id that
                already exists, or a batch over the limits; nothing is written.
        """
        ids, flat = batch_args(jobs, self.config, self.registry)
        if ids:
            self._write(flat)
        return ids

    async def asubmit(
        self,
        task: str,
        payload: Any = None,
        *,
        priority: int = 0,
        max_retries: int | None = None,
        job_id: str | None = None,
        delay_s: float | None = None,
        run_at: float | None = None,
    ) -> str:
        """:meth:`submit` for asyncio code: the same checks and the same script, awaited.

        On a plain Redis server (``redis://``, ``rediss://``, ``unix://``) the call goes out
        on a ``redis.asyncio`` connection of the running event loop and never blocks it; on
        the embedded backend, a Cluster or Sentinel deployment, or with replicas to wait
        for, :meth:`submit` runs in a thread. Call :meth:`aclose` before the loop ends.

        Example:
            >>> job_id = await queue.asubmit("resize", {"width": 640})  # doctest: +SKIP
        """
        request = JobRequest(task, payload, priority, max_retries, job_id, delay_s, run_at)
        return (await self.asubmit_many([request]))[0]

    async def asubmit_many(self, jobs: Iterable[JobRequest]) -> list[str]:
        """:meth:`submit_many` for asyncio code (see :meth:`asubmit`)."""
        ids, flat = batch_args(jobs, self.config, self.registry)
        if ids:
            with mapped_errors(self._shown), duplicates_named():
                await self._scripts.asubmit(self.config.band_us, flat)
        return ids

    async def aclose(self) -> None:
        """Close the connections :meth:`asubmit` opened on the running event loop."""
        await self._scripts.aclose()

    def _write(self, flat: list[Any]) -> None:
        with mapped_errors(self._shown), duplicates_named():
            self._scripts.submit(self.config.band_us, flat)

    # --- inspecting -----------------------------------------------------------------------

    def status(self, job_id: str) -> Job:
        """The job's record; see :meth:`jobsim.inspection.Inspector.status`."""
        return self.inspect.status(job_id)

    def job_ids(self, status: JobStatus | str, *, limit: int = 100, offset: int = 0) -> list[str]:
        """Ids of jobs in ``status``; see :meth:`jobsim.inspection.Inspector.job_ids`."""
        return self.inspect.job_ids(status, limit=limit, offset=offset)

    def jobs(self, status: JobStatus | str, *, limit: int = 100, offset: int = 0) -> list[Job]:
        """Records of jobs in ``status``; see :meth:`jobsim.inspection.Inspector.job_ids`."""
        return self.inspect.get_many(self.inspect.job_ids(status, limit=limit, offset=offset))

    def dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[Job]:
        """Jobs in the dead-letter queue, oldest first, with every attempt's error.

        Raises:
            InvalidInputError: a limit or offset that is not an integer >= 0.
        """
        return self.jobs(JobStatus.FAILED, limit=limit, offset=offset)

    def get_many(self, ids: Sequence[str]) -> list[Job]:
        """The records of ``ids`` that exist; see :meth:`jobsim.inspection.Inspector.get_many`."""
        return self.inspect.get_many(ids)

    def stats(self) -> QueueStats:
        """Counts per status now; see :meth:`jobsim.inspection.Inspector.stats`."""
        return self.inspect.stats()

    def limits(self) -> dict[str, TaskLimits]:
        """The limits in force; see :meth:`jobsim.inspection.Inspector.limits`."""
        return self.inspect.limits()

    def running(self, task: str) -> int:
        """Concurrency slots ``task`` holds; see :meth:`jobsim.inspection.Inspector.running`."""
        return self.inspect.running(task)

    def workers(self) -> list[WorkerInfo]:
        """The worker registry; see :meth:`jobsim.leases.Leases.workers`."""
        return self.leases.workers()

    def wait_until_drained(self, timeout_s: float = 60.0) -> QueueStats:
        """Block until nothing is scheduled, queued, processing or retrying.

        Returns:
            The stats at the moment the queue was found drained.

        Raises:
            DrainTimeoutError: still active after ``timeout_s``; ``.active`` has the counts.
        """
        deadline = time.monotonic() + timeout_s
        pause = 0.002
        while True:
            stats = self.stats()
            if stats.active == 0:
                return stats
            if time.monotonic() >= deadline:
                active = {
                    "scheduled": stats.scheduled,
                    "queued": stats.queued,
                    "processing": stats.processing,
                    "retrying": stats.retrying,
                }
                raise DrainTimeoutError(
                    f"queue {self.name!r} not drained after {timeout_s:g} s: {active}",
                    active=active,
                )
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)

    # --- controlling jobs: cancel, wait, pause (see jobsim.control) -----------------------

    def cancel(self, job_id: str) -> bool:
        """Cancel a job; see :meth:`jobsim.control.Control.cancel`."""
        return self.control.cancel(job_id)

    def wait(self, job_id: str, timeout_s: float = 10.0) -> Job:
        """Block until the job is finished, without polling; see
        :meth:`jobsim.control.Control.wait`."""
        return self.control.wait(job_id, timeout_s)

    def pause(self) -> bool:
        """Pause the queue; see :meth:`jobsim.control.Control.pause`."""
        return self.control.pause()

    def resume(self) -> bool:
        """Resume a paused queue; see :meth:`jobsim.control.Control.resume`."""
        return self.control.resume()

    @property
    def paused(self) -> bool:
        """Whether the queue is paused now."""
        return self.control.paused

    # --- dead-letter queue ----------------------------------------------------------------

    def requeue_dead(self, job_id: str) -> None:
        """Requeue one dead letter; see :meth:`jobsim.dead_letters.DeadLetters.requeue`."""
        self.dead.requeue(job_id)

    def requeue_all_dead(self) -> int:
        """Requeue every dead letter; see :meth:`~jobsim.dead_letters.DeadLetters.requeue_all`."""
        return self.dead.requeue_all()

    def purge_dead(self) -> int:
        """Delete every dead letter; see :meth:`jobsim.dead_letters.DeadLetters.purge`."""
        return self.dead.purge()

    def delete(self) -> None:
        """Delete the whole queue: every job and every key. Stop its workers first."""
        pattern = self.keys.job_prefix.removesuffix("job:")
        pattern = pattern.replace("{", "\\{").replace("}", "\\}") + "*"
        batch: list[str] = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= _CHUNK:
                self.client.delete(*batch)
                batch.clear()
        self.client.delete(*batch, *self.keys.all_fixed())
