"""Worker pools: threads in this process, or supervised worker processes.

:class:`WorkerPool` is the one public face of both backends: :class:`jobsim.threads.
ThreadGroup` (threads and their supervisor) and :class:`jobsim.procs.ProcessGroup`
(worker processes, each running one worker thread, and the parent that supervises them).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType
from typing import Literal

import redis

from jobsim.errors import InvalidInputError
from jobsim.pool_settings import PoolSettings
from jobsim.procs import ProcessGroup
from jobsim.queue import JobQueue
from jobsim.scheduler import SchedulerThread
from jobsim.tasks import registry as default_registry
from jobsim.threads import ThreadGroup

log = logging.getLogger("jobsim.pool")

Mode = Literal["thread", "process"]


def shares(concurrency: int, weights: Sequence[float]) -> list[int]:
    """How many of ``concurrency`` workers serve each queue: one each, then the rest in
    proportion to ``weights`` (largest remainder, ties to the earlier queue).

    Example:
        >>> shares(8, [3, 1])
        [6, 2]
        >>> shares(3, [1, 1, 1])
        [1, 1, 1]

    Raises:
        InvalidInputError: fewer workers than queues, or a weight that is not > 0.
    """
    if any(isinstance(w, bool) or not isinstance(w, int | float) or not w > 0 for w in weights):
        raise InvalidInputError("every weight must be a number > 0", field="weights", value=weights)
    if concurrency < len(weights):
        raise InvalidInputError(
            f"{len(weights)} queues need at least as many workers",
            field="concurrency",
            value=concurrency,
        )
    spare = concurrency - len(weights)
    ideal = [spare * w / sum(weights) for w in weights]
    out = [1 + math.floor(x) for x in ideal]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(ideal[i] % 1), i))
    for i in by_remainder[: concurrency - sum(out)]:
        out[i] += 1
    return out


class WorkerPool:
    """A pool of workers serving one queue, or several; use it as a context manager.

    Example:
        >>> with WorkerPool(queue, concurrency=4):          # doctest: +SKIP
        ...     queue.wait_until_drained(timeout_s=60)
        >>> with WorkerPool([orders, mail], concurrency=8, weights=[3, 1]):  # doctest: +SKIP
        ...     orders.wait_until_drained()                 # 6 workers on orders, 2 on mail

    Several queues share the pool's workers by **weighted partition**: each queue gets one
    worker, and the others are dealt out in proportion to ``weights`` (:func:`shares`), so
    under load queue *i* gets ``weights[i] / sum(weights)`` of the pool's capacity and
    none starves. Each worker serves its own queue in priority order, exactly as a pool of
    one queue does. A worker whose queue is empty does not help another: it blocks on its
    own queue's wake key, which is what lets the queues live on different Redis Cluster
    shards (one blocking call cannot span slots).

    Args:
        queue: the queue to serve, or a list of queues (each its own :class:`JobQueue`,
            possibly on different shards of one cluster client).
        concurrency: number of workers (threads, or processes in ``process`` mode), in total
            over all queues.
        weights: each queue's share of the workers (default equal); ``len(queue)`` numbers
            > 0.
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
        queue: JobQueue | Sequence[JobQueue],
        concurrency: int = 4,
        mode: Mode = "thread",
        *,
        weights: Sequence[float] | None = None,
        job_timeout_s: float | None = None,
        grace_s: float = 5.0,
        prefetch_s: float = 0.002,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        if mode not in ("thread", "process"):
            raise InvalidInputError("mode must be 'thread' or 'process'", field="mode", value=mode)
        queues = [queue] if isinstance(queue, JobQueue) else list(queue)
        if not queues or len({q.name for q in queues}) != len(queues):
            raise InvalidInputError(
                "give one queue or a list of queues with distinct names",
                field="queue",
                value=[q.name for q in queues],
            )
        weights = [1.0] * len(queues) if weights is None else list(weights)
        if len(weights) != len(queues):
            raise InvalidInputError("one weight per queue", field="weights", value=weights)
        if mode == "process" and any(q.registry is not default_registry for q in queues):
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
        self.queues = queues
        """The queues served, in the order given."""
        self.queue = queues[0]
        """The (first) queue served."""
        self.weights = weights
        self.mode: Mode = mode
        self.id = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        group = ProcessGroup if mode == "process" else ThreadGroup
        split = shares(concurrency, weights)  # one queue too: a bad weight is refused
        self._groups: list[ThreadGroup | ProcessGroup] = [
            group(q, replace(self.settings, concurrency=n, seed=seed + i), self._group_id(i))
            for i, (q, n) in enumerate(zip(queues, split, strict=True))
        ]
        self._started = False
        self._stopped = False
        # a periodic scheduler per queue that has schedules (every pool runs one; they race)
        self._schedulers = [
            SchedulerThread(q, self._group_id(i)) for i, q in enumerate(queues) if q.config.periodic
        ]

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

    def _group_id(self, index: int) -> str:
        return self.id if len(self.queues) == 1 else f"{self.id}-q{index}"

    @property
    def shares(self) -> dict[str, int]:
        """Workers per queue name."""
        pairs = zip(self.queues, self._groups, strict=True)
        return {q.name: g.settings.concurrency for q, g in pairs}

    @property
    def worker_ids(self) -> list[str]:
        """Ids of this pool's current workers, as they appear in the registry."""
        return [w for g in self._groups for w in g.worker_ids]

    @property
    def discarded(self) -> list[str]:
        """Finished jobs whose results a killed thread worker lost (they run again)."""
        return [j for g in self._groups for j in g.discarded]

    def start(self) -> None:
        """Start the workers and their supervisor.

        Raises:
            RuntimeError: the pool was already started.
        """
        if self._started:
            raise RuntimeError("this pool was already started")
        self._started = True
        for group in self._groups:
            group.start()
        for scheduler in self._schedulers:  # the PERIODIC script makes each tick happen once
            scheduler.start()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop gracefully: no new jobs; in-flight jobs get ``grace_s`` to finish, then their
        leases are given back (the attempt counts) so another worker runs them. Leased jobs
        not yet started go back to their place in the queue, attempts untouched."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        for scheduler in self._schedulers:
            scheduler.stop()
        grace = self.settings.grace_s if grace_s is None else grace_s
        # every queue's workers stop at once: the grace period is not paid once per queue
        stoppers = [threading.Thread(target=g.stop, args=(grace,)) for g in self._groups]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        for i, (queue, group) in enumerate(zip(self.queues, self._groups, strict=True)):
            try:
                queue.leases.deregister(group.worker_ids)
                queue.client.delete(queue.keys.stop(self._group_id(i)))
            except redis.RedisError as exc:
                log.warning("could not deregister pool %s: %s", self.id, exc)

    # --- killing workers on purpose (chaos drills, the simulator's crash faults) -----------

    def busy_worker_ids(self) -> list[str]:
        """Ids of the workers running a job right now."""
        return [w for g in self._groups for w in g.busy_worker_ids()]

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes (empty in thread mode)."""
        return [p for g in self._groups if isinstance(g, ProcessGroup) for p in g.worker_pids()]

    def kill_worker(self, worker_id: str) -> None:
        """Kill one worker as a crash would: a process gets SIGKILL (its supervisor then gives
        its leases back and starts a new one); a thread loses every lease it holds when its
        running job ends (no result sent, no heartbeat), as if it had died, and the jobs it
        had finished run again (:attr:`discarded` lists them).

        Raises:
            InvalidInputError: no such worker in this pool.
        """
        if not any(g.kill(worker_id) for g in self._groups):
            raise InvalidInputError("no such worker", field="worker_id", value=worker_id)
