"""A pool of worker threads in a child process of its own, supervised by the parent.

``jobsim serve`` runs its workers this way on a real Redis: the worker threads then share no
interpreter lock with the HTTP event loop, so a busy pool does not slow the answers to
``POST /submit``, and a job that hogs the CPU or crashes the interpreter takes down only the
child. The parent supervises it: a child that dies is restarted (after a growing pause when
it keeps dying at once), the leases its workers held are given back at once instead of after
a lease's length, and :attr:`PoolProcess.worker_ids` names the current child's workers, so a
health check sees none of them alive until the new child heartbeats.

The embedded backend (fakeredis, no URL) cannot be shared this way: its data lives in this
process, and a child could reach it only through a bridge this process serves, which would
bring every worker's Redis traffic back onto this process. Its workers stay in-process.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from jobsim.config import QueueConfig
from jobsim.connection import client_url, connect, is_embedded
from jobsim.errors import InvalidInputError
from jobsim.logs import configure_from_env
from jobsim.pool import WorkerPool
from jobsim.queue import JobQueue
from jobsim.slot import CONTEXT
from jobsim.tasks import registry as default_registry

ORPHAN_CHECK_S = 0.25
"""How often the child checks that its parent is alive (it stops when the parent is gone)."""
STOP_MARGIN_S = 10.0
"""How long past the grace period a stopping child may take before it is killed."""
QUICK_DEATH_S = 2.0
"""A child that dies this soon after starting is restarted after a growing pause."""

log = logging.getLogger("jobsim.pool_process")


@dataclass(frozen=True)
class PoolSpec:
    """What the child needs to run its pool (picklable)."""

    url: str
    queue_name: str
    config: QueueConfig
    modules: tuple[str, ...]
    name: str
    concurrency: int
    job_timeout_s: float | None
    grace_s: float
    parent_pid: int


def pool_main(spec: PoolSpec) -> None:
    """Entry point of the child: a thread :class:`~jobsim.pool.WorkerPool` until SIGTERM, or
    until its parent is gone; then a graceful stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    configure_from_env()
    for module in spec.modules:
        importlib.import_module(module)
    queue = JobQueue(connect(spec.url), spec.queue_name, spec.config)
    pool = WorkerPool(
        queue,
        spec.concurrency,
        "thread",
        job_timeout_s=spec.job_timeout_s,
        grace_s=spec.grace_s,
        name=spec.name,
    )
    pool.start()
    # polling the parent's pid also stops a child whose parent was SIGKILLed (re-parented)
    while os.getppid() == spec.parent_pid and not stop.wait(ORPHAN_CHECK_S):
        pass
    if os.getppid() != spec.parent_pid:
        log.warning("worker process %s: parent %s is gone; stopping", os.getpid(), spec.parent_pid)
    pool.stop()


class PoolProcess:
    """``concurrency`` worker threads serving ``queue`` in one supervised child process.

    Example:
        >>> with PoolProcess(JobQueue(connect(url), "jobs"), 4) as pool:  # doctest: +SKIP
        ...     print(pool.pid, pool.worker_ids)

    Args:
        queue: the queue to serve, on a real Redis (not the embedded backend); its tasks come
            from the default registry, whose modules the child imports.
        concurrency: worker threads in the child.
        job_timeout_s: default per-job timeout of the workers.
        grace_s: on stop, how long in-flight jobs may run before their leases are given back.
        name: prefix of the worker ids (default: host, pid and a random suffix); each
            child gets ``<name>.<generation>`` and its workers ``<name>.<generation>-<i>``.

    Raises:
        InvalidInputError: the embedded backend, a task registry other than the default one,
            or fewer than one worker.
    """

    def __init__(
        self,
        queue: JobQueue,
        concurrency: int = 4,
        *,
        job_timeout_s: float | None = None,
        grace_s: float = 5.0,
        name: str | None = None,
    ) -> None:
        if is_embedded(queue.client):
            raise InvalidInputError(
                "the embedded backend lives inside this process and cannot be shared with a "
                "worker process; pass a Redis URL, or run the workers in-process",
                field="worker_process",
                value=True,
            )
        if queue.registry is not default_registry:
            raise InvalidInputError(
                "a worker process uses the default task registry; register the tasks with "
                "@jobsim.task",
                field="registry",
                value=queue.name,
            )
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidInputError(
                "concurrency must be an integer >= 1", field="concurrency", value=concurrency
            )
        self.queue = queue
        self.concurrency = concurrency
        self.job_timeout_s = job_timeout_s
        self.grace_s = grace_s
        self.id = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.generation = -1
        self.restarts = 0
        """Children started after the first (each after a death)."""
        self._process: Any = None
        self._spawned_at = 0.0
        self._quick_deaths = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def __enter__(self) -> PoolProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def child_name(self) -> str:
        """The current child's name, the prefix of its workers' ids."""
        return f"{self.id}.{max(self.generation, 0)}"

    @property
    def worker_ids(self) -> list[str]:
        """Ids of the current child's workers, as they appear in the registry."""
        return [f"{self.child_name}-{i}" for i in range(self.concurrency)]

    @property
    def pid(self) -> int | None:
        """Process id of the current child (``None`` before the start)."""
        return self._process.pid if self._process is not None else None

    def alive(self) -> bool:
        """Whether the current child is running."""
        return bool(self._process is not None and self._process.is_alive())

    def start(self) -> None:
        """Start the child and its supervisor thread.

        Raises:
            RuntimeError: already started.
        """
        if self._supervisor is not None:
            raise RuntimeError("this pool process was already started")
        self._spawn()
        atexit.register(self.stop)
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"jobsim-supervisor-{self.id}", daemon=True
        )
        self._supervisor.start()

    def stop(self) -> None:
        """Stop gracefully: the child stops leasing, in-flight jobs get ``grace_s``, then
        their leases are given back; a child still running :data:`STOP_MARGIN_S` after that
        is killed and its workers' leases are given back here."""
        if self._supervisor is None or self._stopping.is_set():
            return
        self._stopping.set()
        atexit.unregister(self.stop)
        with self._lock:
            process = self._process
            if process.is_alive():
                process.terminate()  # SIGTERM: the child's own graceful stop
                process.join(self.grace_s + STOP_MARGIN_S)
            if process.is_alive():
                log.warning("worker process %s outlived its grace period; killing it", process.pid)
                process.kill()
                process.join()
                self._take_back("interrupted", "worker process stopped before the job finished")
            elif process.exitcode != 0:
                self._take_back("crashed", f"worker process {process.pid} died while stopping")
        self._supervisor.join()

    def kill(self) -> None:
        """SIGKILL the current child, as a crash would (the supervisor restarts it)."""
        with self._lock:
            if self.alive():
                os.kill(self._process.pid, signal.SIGKILL)
                self._process.join(5.0)

    # --- supervision ----------------------------------------------------------------------

    def _spawn(self) -> None:
        self.generation += 1
        unreachable = [s.name for s in default_registry if s.module == "__main__"]
        if unreachable and not getattr(sys.modules.get("__main__"), "__file__", None):
            log.warning("a worker process cannot load tasks defined here: %s", unreachable)
        modules = {s.module for s in default_registry} - {"jobsim.builtin_tasks", "__main__"}
        spec = PoolSpec(
            url=client_url(self.queue.client),
            queue_name=self.queue.name,
            config=self.queue.config,
            modules=tuple(sorted(modules)),
            name=self.child_name,
            concurrency=self.concurrency,
            job_timeout_s=self.job_timeout_s,
            grace_s=self.grace_s,
            parent_pid=os.getpid(),
        )
        # not a daemon, so a task may start processes of its own; start() registers stop()
        # to run at exit, before multiprocessing would wait for a child that never stops
        process = CONTEXT.Process(target=pool_main, args=(spec,), name=self.child_name)
        process.start()
        self._process = process
        self._spawned_at = time.monotonic()

    def _take_back(self, outcome: str, error: str) -> None:
        """Give back every lease the current child's workers hold (the attempts count) and
        remove them from the registry."""
        leases = self.queue.leases
        try:
            for worker_id in self.worker_ids:
                leases.release_worker(worker_id, outcome, error)
            leases.deregister(self.worker_ids)
        except redis.RedisError as exc:  # their leases then expire by themselves
            log.warning("could not take back the leases of %s: %s", self.child_name, exc)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            multiprocessing.connection.wait([self._process.sentinel], timeout=0.5)
            try:
                with self._lock:
                    if self._stopping.is_set() or self._process.is_alive():
                        continue
                    pause = self._reap()
                if not self._stopping.wait(pause):
                    with self._lock:
                        if not self._stopping.is_set():
                            self.restarts += 1
                            self._spawn()
            except Exception:  # the supervisor must outlive any one failure
                log.exception("supervisor of worker process %s", self.id)
                self._stopping.wait(0.5)

    def _reap(self) -> float:
        """Give back the leases of a child that died; how long to wait before the next one."""
        process = self._process
        code = process.exitcode
        reason = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        log.warning("worker process %s (%s) died (%s); restarting", process.pid, self.id, reason)
        self._take_back("crashed", f"worker process {process.pid} died ({reason})")
        quick = time.monotonic() - self._spawned_at < QUICK_DEATH_S
        self._quick_deaths = self._quick_deaths + 1 if quick else 0
        return min(0.1 * 2**self._quick_deaths, 5.0) if self._quick_deaths else 0.0
