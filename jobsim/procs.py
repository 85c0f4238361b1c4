"""Process mode: worker processes and the group that supervises them.

Each worker is a child process (started with ``spawn``) running one worker thread with its
own Redis connection (:class:`jobsim.threads.ThreadGroup`). It writes to its
:class:`jobsim.slot.Slot` the batch it leased and how far it got, so its parent can tell,
after killing it or finding it dead, which leased jobs never started (put back, attempt not
counted) and which one was running (attempt counted). The parent kills a child whose job ran
past its timeout, or past the grace period after that job's cancel, takes back the leases of
a child that died, and starts a new one. On the embedded backend the children reach the
parent's in-process server through a private Unix-socket bridge
(:func:`jobsim.connection.serve_embedded`).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing.connection
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from jobsim.books import Holdings, take_back
from jobsim.config import QueueConfig
from jobsim.connection import client_url, connect
from jobsim.logs import configure_from_env
from jobsim.pool_settings import PoolSettings
from jobsim.queue import JobQueue
from jobsim.scripts import Dequeued
from jobsim.slot import CONTEXT, Slot
from jobsim.tasks import registry as default_registry
from jobsim.threads import ThreadGroup

ORPHAN_CHECK_S = 0.25  # how often a worker process checks that its parent is alive

log = logging.getLogger("jobsim.procs")

__all__ = ["CONTEXT", "Child", "ChildSpec", "ProcessGroup", "Slot", "child_main"]


@dataclass(frozen=True)
class ChildSpec:
    """Everything a worker process needs (picklable)."""

    url: str
    queue_name: str
    config: QueueConfig
    modules: list[str]
    pool_name: str
    settings: PoolSettings
    parent_pid: int = 0  # the supervising process; the child stops when it is gone


def child_main(spec: ChildSpec, slot: Slot) -> None:
    """Entry point of a worker process: one worker thread until SIGTERM, or until its
    parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    configure_from_env()  # log as the parent was told to ($JOBSIM_LOG_FORMAT, inherited)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for module in spec.modules:
        importlib.import_module(module)
    queue = JobQueue(connect(spec.url), spec.queue_name, spec.config)
    group = ThreadGroup(queue, spec.settings, spec.pool_name, report=slot)
    group.start()
    # A bare wait() would not wake for the signal handler; polling the parent's pid also
    # stops a child whose parent was SIGKILLed (it is re-parented), instead of leaving it
    # leasing jobs with nobody enforcing timeouts. The pid comes from the parent, so a
    # parent that died while this child started is noticed too.
    while os.getppid() == spec.parent_pid and not stop.wait(ORPHAN_CHECK_S):
        pass
    if os.getppid() != spec.parent_pid:
        log.warning("worker process %s: parent %s is gone; stopping", os.getpid(), spec.parent_pid)
    group.stop(grace_s=slot.grace_s.value)
    queue.leases.deregister(group.worker_ids)
    slot.batch([])  # every lease was settled or given back here: nothing left for the parent


class Child:
    """One worker process of a pool, restarted with a backoff when it keeps dying."""

    def __init__(self, pool_id: str, index: int, spec: ChildSpec) -> None:
        self.index = index
        self.pool_id = pool_id
        self.spec = spec
        self.generation = -1
        self.slot = Slot()
        self.process: Any = None
        self.spawned_at = 0.0
        self.quick_deaths = 0
        self.respawn_at = 0.0

    @property
    def name(self) -> str:
        return f"{self.pool_id}-p{self.index}.{max(self.generation, 0)}"

    @property
    def worker_id(self) -> str:
        """The id its one worker thread registers and leases under."""
        return f"{self.name}-0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def sentinel(self) -> int | None:
        return self.process.sentinel if self.process else None

    def spawn(self) -> None:
        self.generation += 1
        self.slot = Slot()  # a fresh one: nothing the previous child left can confuse it
        # Each child, and each restart of it, draws its own reproducible jitter stream.
        seed = self.spec.settings.seed * 10_007 + self.index * 101 + self.generation
        spec = replace(
            self.spec,
            pool_name=self.name,
            settings=replace(self.spec.settings, concurrency=1, seed=seed),
            parent_pid=os.getpid(),
        )
        process = CONTEXT.Process(target=child_main, args=(spec, self.slot), name=self.name)
        process.daemon = True
        process.start()
        self.process = process
        self.spawned_at = time.monotonic()

    def schedule_respawn(self) -> None:
        """Respawn at once, or after a growing pause if it died right after starting."""
        quick = time.monotonic() - self.spawned_at < 2.0
        self.quick_deaths = self.quick_deaths + 1 if quick else 0
        self.respawn_at = time.monotonic() + (
            min(0.1 * 2**self.quick_deaths, 5.0) if self.quick_deaths else 0.0
        )

    def alive(self) -> bool:
        return bool(self.process and self.process.is_alive())

    def terminate(self, grace_s: float) -> None:
        self.slot.grace_s.value = grace_s
        if self.alive():
            self.process.terminate()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        if self.process:
            self.process.join()

    def join(self, timeout: float) -> None:
        if self.process:
            self.process.join(timeout)

    def exit_reason(self) -> str:
        code = self.process.exitcode if self.process else None
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


class ProcessGroup:
    """``settings.concurrency`` worker processes of pool ``pool_id``, and their supervisor.

    Args:
        queue: the queue they serve (the default task registry's modules are imported in
            each child).
        settings: how the workers behave.
        pool_id: prefix of the worker ids.
    """

    def __init__(self, queue: JobQueue, settings: PoolSettings, pool_id: str) -> None:
        self.queue = queue
        self.settings = settings
        self.pool_id = pool_id
        self.children: list[Child] = []
        self.discarded: list[str] = []  # (thread mode only; here a crash loses no results)
        self._lock = threading.Lock()  # the supervisor respawns, stop() and kill() reap
        self._stopping = threading.Event()
        self._halt = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._rng = random.Random(f"{settings.seed}:supervisor")

    @property
    def worker_ids(self) -> list[str]:
        return [c.worker_id for c in self.children]

    def worker_pids(self) -> list[int]:
        return [c.pid for c in self.children if c.pid is not None]

    def start(self) -> None:
        spec = self._child_spec()
        self.children = [Child(self.pool_id, i, spec) for i in range(self.settings.concurrency)]
        for child in self.children:
            child.spawn()
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"jobsim-supervisor-{self.pool_id}", daemon=True
        )
        self._supervisor.start()

    def stop(self, grace_s: float) -> None:
        self._stopping.set()
        deadline = time.monotonic() + grace_s
        with self._lock:
            for child in self.children:
                child.terminate(grace_s)
            for child in self.children:
                child.join(max(0.0, deadline - time.monotonic()))
            for child in self.children:
                if child.alive():
                    child.kill()
                    self.take_back_child(
                        child, "interrupted", "worker process stopped before the job finished"
                    )
        self._halt.set()
        if self._supervisor is not None:
            self._supervisor.join()

    def busy_worker_ids(self) -> list[str]:
        with self._lock:
            return [c.worker_id for c in self.children if c.alive() and c.slot.running()]

    def kill(self, worker_id: str) -> bool:
        """SIGKILL a worker process (the supervisor then gives its leases back)."""
        with self._lock:
            child = next((c for c in self.children if c.worker_id == worker_id), None)
            if child is None or child.pid is None:
                return False
            os.kill(child.pid, signal.SIGKILL)
            child.join(5.0)  # dead before anyone picks a victim again
            return True

    def _child_spec(self) -> ChildSpec:
        unreachable = [s.name for s in default_registry if s.module == "__main__"]
        if unreachable and not getattr(sys.modules.get("__main__"), "__file__", None):
            log.warning("process workers cannot load tasks defined here: %s", unreachable)
        modules = {s.module for s in default_registry} - {"jobsim.builtin_tasks", "__main__"}
        return ChildSpec(
            url=client_url(self.queue.client),
            queue_name=self.queue.name,
            config=self.queue.config,
            modules=sorted(modules),
            pool_name=self.pool_id,
            settings=self.settings,
        )

    def take_back_child(self, child: Child, outcome: str, error: str) -> None:
        """Take back a gone child's leases: from its slot, then every lease it was handed
        that the slot does not show (never taken, so put back uncounted), then whatever is
        left under its id (counted)."""
        leases = self.queue.leases
        holdings = child.slot.holdings()
        if holdings is not None:
            known = holdings.known_tokens()
            unreported = [
                j for j in leases.last_leased(child.worker_id) if (j.id, j.token) not in known
            ]
            holdings.unstarted += unreported
        take_back(
            leases, child.worker_id, holdings or Holdings(), outcome=outcome, error=error,
            catch_all=True, backoff_us=self._backoff_us,
        )  # fmt: skip
        leases.deregister([child.worker_id])

    def _backoff_us(self, job: Dequeued) -> int:
        delay = self.queue.config.retry.delay_s(
            job.backoff_attempt, previous_s=job.previous_delay_s, rng=self._rng
        )
        return round(delay * 1e6)

    def _supervise(self) -> None:
        while not self._halt.is_set():
            try:
                with self._lock:
                    if not self._stopping.is_set():
                        self._watch(time.monotonic())
                sentinels = [c.sentinel for c in self.children if c.sentinel is not None]
                multiprocessing.connection.wait(sentinels, timeout=0.1)
            except Exception:  # the supervisor must outlive any one failure
                log.exception("supervisor of pool %s", self.pool_id)
                self._halt.wait(0.5)

    def _watch(self, now: float) -> None:
        for child in self.children:
            if child.alive():
                running = child.slot.running()
                due = running.next_deadline() if running is not None else None
                if running is None or due is None or now < due:
                    continue
                child.kill()
                if running.cancel_deadline and now >= running.cancel_deadline:
                    self.take_back_child(child, "cancelled", "cancelled; its process was killed")
                else:
                    self.take_back_child(child, "timeout", "its worker process was killed")
                child.spawn()
            elif child.respawn_at == 0.0:
                reason = f"worker process {child.pid} died ({child.exit_reason()})"
                self.take_back_child(child, "crashed", reason)
                child.schedule_respawn()
            elif now >= child.respawn_at:
                child.respawn_at = 0.0
                child.spawn()
