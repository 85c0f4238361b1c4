"""Worker pools: threads in this process, or supervised worker processes.

:class:`WorkerPool` is the one public face of both backends: :class:`jobsim.threads.
ThreadGroup` (threads and their supervisor) and :class:`jobsim.procs.ProcessGroup`
(worker processes, each running one worker thread, and the parent that supervises them).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from types import TracebackType
from typing import Literal

import redis

from jobsim.errors import InvalidInputError
from jobsim.procs import ProcessGroup
from jobsim.queue import JobQueue
from jobsim.scheduler import SchedulerThread
from jobsim.tasks import registry as default_registry
from jobsim.threads import ThreadGroup
from jobsim.worker import PoolSettings

log = logging.getLogger("jobsim.pool")

Mode = Literal["thread", "process"]


class WorkerPool:
    """A pool of workers serving one queue; use it as a context manager.

    Example:
        >>> with WorkerPool(queue, concurrency=4):          # doctest: +SKIP
        ...     queue.wait_until_drained(timeout_s=60)

    Args:
        queue: the queue to serve.
        concurrency: number of workers (threads, or processes in ``process`` mode).
        mode: ``"thread"`` or ``"process"``. Process workers use the default task registry
            and import the modules that registered tasks (a notebook's own tasks cannot be
            re-imported: use threads for those).
        job_timeout_s: default per-job timeout (a task's own ``timeout_s`` wins). A thread
            cannot be killed: it gives up the lease and the timeout is recorded; a process is
            killed.
        grace_s: on stop, how long in-flight jobs may run before their leases are given back.
        prefetch_s: how much work (at the recent mean run time) a worker leases ahead, so
            fast jobs travel in batches; 0 leases one job at a time.
        seed: seeds the backoff jitter of each worker.
        name: prefix of the worker ids (default: host, pid and a random suffix).

    Raises:
        InvalidInputError: a setting out of range, or process mode with a custom registry.
    """

    def __init__(
        self,
        queue: JobQueue,
        concurrency: int = 4,
        mode: Mode = "thread",
        *,
        job_timeout_s: float | None = None,
        grace_s: float = 5.0,
        prefetch_s: float = 0.002,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        if mode not in ("thread", "process"):
            raise InvalidInputError("mode must be 'thread' or 'process'", field="mode", value=mode)
        if mode == "process" and queue.registry is not default_registry:
            raise InvalidInputError(
                "process workers use the default task registry; register the tasks with "
                "@jobsim.task, or use mode='thread'",
                field="mode",
                value=mode,
            )
        self.settings = PoolSettings(
            concurrency=concurrency,
            job_timeout_s=job_timeout_s,
            grace_s=grace_s,
            prefetch_s=prefetch_s,
            seed=seed,
        )
        self.queue = queue
        self.mode: Mode = mode
        self.id = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self._group: ThreadGroup | ProcessGroup = (
            ProcessGroup(queue, self.settings, self.id)
            if mode == "process"
            else ThreadGroup(queue, self.settings, self.id)
        )
        self._started = False
        self._stopped = False
        self._scheduler: SchedulerThread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> WorkerPool:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def concurrency(self) -> int:
        """Number of workers."""
        return self.settings.concurrency

    @property
    def worker_ids(self) -> list[str]:
        """Ids of this pool's current workers, as they appear in the registry."""
        return self._group.worker_ids

    @property
    def discarded(self) -> list[str]:
        """Finished jobs whose results a killed thread worker lost (they run again)."""
        return self._group.discarded

    def start(self) -> None:
        """Start the workers and their supervisor.

        Raises:
            RuntimeError: the pool was already started.
        """
        if self._started:
            raise RuntimeError("this pool was already started")
        self._started = True
        self._group.start()
        if self.queue.config.periodic:  # every pool schedules; the scripts make it once a tick
            self._scheduler = SchedulerThread(self.queue, self.id)
            self._scheduler.start()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop gracefully: no new jobs; in-flight jobs get ``grace_s`` to finish, then their
        leases are given back (the attempt counts) so another worker runs them. Leased jobs
        not yet started go back to their place in the queue, attempts untouched."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        if self._scheduler is not None:
            self._scheduler.stop()
        self._group.stop(self.settings.grace_s if grace_s is None else grace_s)
        try:
            self.queue.leases.deregister(self.worker_ids)
            self.queue.client.delete(self.queue.keys.stop(self.id))
        except redis.RedisError as exc:
            log.warning("could not deregister pool %s: %s", self.id, exc)

    # --- killing workers on purpose (chaos drills, the simulator's crash faults) -----------

    def busy_worker_ids(self) -> list[str]:
        """Ids of the workers running a job right now."""
        return self._group.busy_worker_ids()

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes (empty in thread mode)."""
        return self._group.worker_pids() if isinstance(self._group, ProcessGroup) else []

    def kill_worker(self, worker_id: str) -> None:
        """Kill one worker as a crash would: a process gets SIGKILL (its supervisor then gives
        its leases back and starts a new one); a thread loses every lease it holds when its
        running job ends (no result sent, no heartbeat), as if it had died, and the jobs it
        had finished run again (:attr:`discarded` lists them).

        Raises:
            InvalidInputError: no such worker in this pool.
        """
        if not self._group.kill(worker_id):
            raise InvalidInputError("no such worker", field="worker_id", value=worker_id)
