"""Process mode: worker processes, and the shared slot each one reports its leases in.

Each worker is a child process (started with ``spawn``) running a one-thread pool with its
own Redis connection. It writes to its :class:`Slot` the batch it leased and how far it got,
so its parent can tell, after killing it or finding it dead, which leased jobs never
started (put back, attempt not counted) and which one was running (attempt counted).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from jobsim.config import QueueConfig
from jobsim.connection import connect
from jobsim.queue import JobQueue
from jobsim.scripts import Dequeued
from jobsim.worker import Holdings, Running

_BATCH_BYTES = 16_384  # room for a full prefetch batch of ids, tokens and scores
ORPHAN_CHECK_S = 0.25  # how often a worker process checks that its parent is alive

log = logging.getLogger("jobsim.procs")

CONTEXT = mp.get_context("spawn")  # fork is unsafe in a process that runs threads


class Slot:
    """Shared memory between a worker process and its parent.

    The child writes the batch it leased (id, token, attempt numbers, score, previous
    delay), how many of those jobs it has taken, and whether the last one taken is running.
    A job counts as taken before anything can happen to it (even a task unknown to the
    worker), so the parent's view never slips by one: the taken jobs ran (their attempts
    count), the rest never started (put back uncounted).
    """

    def __init__(self) -> None:
        self._lock = CONTEXT.Lock()
        self._batch: Any = CONTEXT.Array("c", _BATCH_BYTES, lock=False)
        self._taken: Any = CONTEXT.Value("i", 0, lock=False)
        self._busy: Any = CONTEXT.Value("b", 0, lock=False)
        self._deadline: Any = CONTEXT.Value("d", 0.0, lock=False)
        self._timeout: Any = CONTEXT.Value("d", 0.0, lock=False)
        self.grace_s: Any = CONTEXT.Value("d", 5.0)  # set by the parent before SIGTERM

    # the child's side (a worker.Report)

    def batch(self, jobs: list[Dequeued]) -> None:
        text = "\n".join(_line(j) for j in jobs).encode()
        # Past the room, the tail is dropped: the parent's catch-all release finds it.
        text = text[:_BATCH_BYTES].rsplit(b"\n", 1)[0] if len(text) > _BATCH_BYTES else text
        with self._lock:
            self._batch.value = text
            self._taken.value = 0
            self._busy.value = 0

    def taken(self, job: Dequeued) -> None:
        with self._lock:
            self._taken.value += 1
            self._busy.value = 0

    def started(self, running: Running) -> None:
        with self._lock:
            self._busy.value = 1
            self._deadline.value = running.deadline or 0.0
            self._timeout.value = running.timeout_s or 0.0

    def finished(self) -> None:
        with self._lock:
            self._busy.value = 0

    # the parent's side

    def running(self) -> Running | None:
        """The job the child is running now, if any."""
        return self.holdings().running

    def holdings(self) -> Holdings:
        """What the child holds: its batch, split by how far it got."""
        with self._lock:
            text = bytes(self._batch.value).decode()
            taken, busy = self._taken.value, self._busy.value
            deadline, timeout = self._deadline.value, self._timeout.value
        jobs = [_parse(line) for line in text.splitlines() if line]
        holdings = Holdings(unstarted=jobs[taken:])
        ran = jobs[:taken]
        if busy and ran:
            holdings.running = Running(ran.pop(), deadline or None, timeout or None)
        holdings.ran = [(j.id, j.token) for j in ran]
        return holdings

    def clear(self) -> None:
        self.batch([])


def _line(job: Dequeued) -> str:
    delay = "-" if job.previous_delay_s is None else repr(job.previous_delay_s)
    return f"{job.id} {job.token} {job.attempt} {job.backoff_attempt} {job.score} {delay}"


def _parse(line: str) -> Dequeued:
    job_id, token, attempt, backoff_attempt, score, delay = line.split(" ")
    return Dequeued(
        id=job_id,
        token=int(token),
        attempt=int(attempt),
        backoff_attempt=int(backoff_attempt),
        score=score,
        previous_delay_s=None if delay == "-" else float(delay),
    )


@dataclass(frozen=True)
class ChildSpec:
    """Everything a worker process needs (picklable)."""

    url: str
    queue_name: str
    config: QueueConfig
    modules: list[str]
    pool_name: str
    job_timeout_s: float | None
    prefetch_s: float
    seed: int
    parent_pid: int = 0  # the supervising process; the child stops when it is gone


def child_main(spec: ChildSpec, slot: Slot) -> None:
    """Entry point of a worker process: a one-thread pool until SIGTERM."""
    from jobsim.pool import WorkerPool

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for module in spec.modules:
        importlib.import_module(module)
    queue = JobQueue(connect(spec.url), spec.queue_name, spec.config)
    pool = WorkerPool(
        queue,
        1,
        "thread",
        job_timeout_s=spec.job_timeout_s,  # reported in the slot; the parent enforces it
        prefetch_s=spec.prefetch_s,
        seed=spec.seed,
        name=spec.pool_name,
        _slot=slot,
    )
    pool.start()
    # A bare wait() would not wake for the signal handler; polling the parent's pid also
    # stops a child whose parent was SIGKILLed (it is re-parented), instead of leaving it
    # leasing jobs with nobody enforcing timeouts. The pid comes from the parent, so a
    # parent that died while this child started is noticed too.
    while os.getppid() == spec.parent_pid and not stop.wait(ORPHAN_CHECK_S):
        pass
    if os.getppid() != spec.parent_pid:
        log.warning("worker process %s: parent %s is gone; stopping", os.getpid(), spec.parent_pid)
    pool.stop(grace_s=slot.grace_s.value)
    slot.clear()  # every lease was settled or given back here: nothing left for the parent


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
        self.slot.clear()
        # Each child, and each restart of it, draws its own reproducible jitter stream.
        seed = self.spec.seed * 10_007 + self.index * 101 + self.generation
        spec = ChildSpec(
            **{
                **self.spec.__dict__,
                "pool_name": self.name,
                "seed": seed,
                "parent_pid": os.getpid(),
            }
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
