"""Worker pools: threads in this process, or supervised worker processes.

A worker leases one job at a time, runs its task, and acks or fails it. While the queue is
empty it blocks on the queue's wake list (no polling). One supervisor thread per pool
heartbeats the leases of running jobs, keeps the worker registry fresh and enforces
per-job timeouts.

In ``process`` mode each worker is a child process running a one-thread pool of its own,
with its own Redis connection; the parent supervises: it kills a child whose job ran past
its timeout, and gives back the lease of a child that died, then starts a new child. On the
embedded backend the children reach the parent's in-process server through a loopback
bridge (:func:`jobsim.connection.serve_embedded`).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import redis

from jobsim.connection import client_url, connect
from jobsim.errors import InvalidInputError, PermanentError
from jobsim.queue import JobQueue, QueueConfig
from jobsim.scripts import Completion, Dequeued, Failure
from jobsim.tasks import AbandonJob, JobContext, TaskSpec
from jobsim.tasks import registry as default_registry

log = logging.getLogger("jobsim.pool")

Mode = Literal["thread", "process"]
IDLE_BLOCK_MAX_S = 2.0  # longest single block on the wake list (below client socket timeouts)
MAX_PREFETCH = 64  # most jobs one worker leases ahead
_ERROR_CHARS = 2000


@dataclass
class _Running:
    job: Dequeued
    deadline: float | None  # time.monotonic() seconds, None without a timeout
    timeout_s: float | None
    timed_out: bool = False


class WorkerPool:
    """A pool of workers serving one queue; use it as a context manager.

    Example:
        >>> with WorkerPool(queue, concurrency=4):          # doctest: +SKIP
        ...     queue.wait_until_drained(timeout_s=60)

    Args:
        queue: the queue to serve.
        concurrency: number of workers (threads, or processes in ``process`` mode).
        mode: ``"thread"`` or ``"process"``.
        job_timeout_s: default per-job timeout (a task's own ``timeout_s`` wins). A thread
            cannot be killed: it gives up the lease and the timeout is recorded; a process is
            killed.
        grace_s: on stop, how long in-flight jobs may run before their leases are given back.
        prefetch_s: how much work (at the recent mean run time) a worker leases ahead, so
            fast jobs travel in batches; 0 leases one job at a time.
        seed: seeds the backoff jitter of each worker.
        name: prefix of the worker ids (default: host, pid and a random suffix).
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
        _slot: Any = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidInputError(
                "concurrency must be an integer >= 1", field="concurrency", value=concurrency
            )
        if mode not in ("thread", "process"):
            raise InvalidInputError("mode must be 'thread' or 'process'", field="mode", value=mode)
        self.queue = queue
        self.concurrency = concurrency
        self.mode: Mode = mode
        self.job_timeout_s = job_timeout_s
        self.grace_s = grace_s
        self.prefetch_s = prefetch_s
        self.seed = seed
        self.id = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self._slot = _slot  # set in a child process: where it reports its running job
        self._stop_key = queue.keys.stop(self.id)
        self._stopping = threading.Event()  # workers take no new jobs
        self._halt = threading.Event()  # the supervisor exits (after the workers stopped)
        self._wakeup = threading.Event()
        self._rng = random.Random(f"{seed}:{self.id}:supervisor")
        self._threads: list[_ThreadWorker] = []
        self._children: list[_Child] = []
        self._children_lock = threading.Lock()  # the supervisor respawns, stop() reaps
        self._supervisor: threading.Thread | None = None
        self._started_at = 0.0

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
    def worker_ids(self) -> list[str]:
        """Ids of this pool's current workers, as they appear in the registry."""
        if self.mode == "process":
            return [c.worker_id for c in self._children]
        return [t.worker_id for t in self._threads]

    def start(self) -> None:
        """Start the workers and the supervisor."""
        if self._supervisor is not None:
            raise RuntimeError("this pool was already started")
        self._started_at = time.time()
        self.queue.client.delete(self._stop_key)
        if self.mode == "process":
            url = client_url(self.queue.client)
            self._children = [_Child(self, i, url) for i in range(self.concurrency)]
            for child in self._children:
                child.spawn()
        else:
            self._threads = [_ThreadWorker(self, i) for i in range(self.concurrency)]
            for thread in self._threads:
                thread.start()
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"jobsim-supervisor-{self.id}", daemon=True
        )
        self._supervisor.start()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop gracefully: no new jobs; in-flight jobs get ``grace_s`` to finish, then their
        leases are given back (the attempt counts) so another worker runs them."""
        if self._supervisor is None or self._stopping.is_set():
            return
        grace = self.grace_s if grace_s is None else grace_s
        self._stopping.set()
        deadline = time.monotonic() + grace
        if self.mode == "process":
            self._stop_children(deadline)
        else:
            self._stop_threads(deadline)
        self._halt.set()
        self._wakeup.set()
        self._supervisor.join()
        try:
            self.queue._deregister(self.worker_ids)
            self.queue.client.delete(self._stop_key)
        except redis.RedisError as exc:
            log.warning("could not deregister pool %s: %s", self.id, exc)

    def _stop_threads(self, deadline: float) -> None:
        self.queue.client.rpush(self._stop_key, *(["1"] * self.concurrency))
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for thread in self._threads:
            if thread.is_alive() and thread.running is not None:
                thread.running = None
                self.queue._release_worker(
                    thread.worker_id, "interrupted", "worker pool stopped before the job finished"
                )

    def _stop_children(self, deadline: float) -> None:
        with self._children_lock:
            self._stop_children_locked(deadline)

    def _stop_children_locked(self, deadline: float) -> None:
        for child in self._children:
            child.terminate()
        for child in self._children:
            child.join(max(0.0, deadline - time.monotonic()))
        for child in self._children:
            if child.alive():
                child.kill()
                child.give_back("interrupted", "worker process stopped before the job finished")
            self.queue._deregister([child.worker_id])

    # --- supervision ----------------------------------------------------------------------

    def _supervise(self) -> None:
        beat_every = self.queue.config.lease.heartbeat_every_s
        next_beat = 0.0
        while True:
            now = time.monotonic()
            if now >= next_beat:
                self._heartbeat()
                next_beat = now + beat_every
            if self._halt.is_set():
                return
            wait = next_beat - now
            if self.mode == "process":
                self._watch_children()
                sentinels = [c.sentinel for c in self._children if c.sentinel is not None]
                mp.connection.wait(sentinels, timeout=min(wait, 0.1))
            else:
                if self._slot is None:  # in a child process the parent enforces timeouts
                    self._enforce_thread_timeouts(now)
                deadlines = [r.deadline for r in self._running() if r.deadline and not r.timed_out]
                if deadlines:
                    wait = min(wait, min(deadlines) - now)
                self._wakeup.wait(max(wait, 0.001))
                self._wakeup.clear()

    def _running(self) -> list[_Running]:
        return [r for t in self._threads if (r := t.running) is not None]

    def _heartbeat(self) -> None:
        if self.mode == "process":
            return  # each child heartbeats its own lease
        for thread in self._threads:
            info = self._registry_entry(thread.worker_id, thread.running)
            try:
                lost = self.queue._heartbeat(thread.worker_id, thread.leases(), info)
            except redis.RedisError as exc:
                log.warning("heartbeat of %s failed: %s", thread.worker_id, exc)
                continue
            for job_id in lost:
                log.info("worker %s lost the lease of job %s", thread.worker_id, job_id)

    def _registry_entry(self, worker_id: str, running: _Running | None) -> str:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "mode": "process" if self._slot is not None else self.mode,
                "started_at": self._started_at,
                "heartbeat_s": self.queue.config.lease.heartbeat_every_s,
                "running": [running.job.id] if running else [],
            }
        )

    def _enforce_thread_timeouts(self, now: float) -> None:
        expired = [
            r for r in self._running() if r.deadline and now >= r.deadline and not r.timed_out
        ]
        for running in expired:
            running.timed_out = True
        if expired:
            self._fail_timeouts(expired, "the thread was left running; its result will be fenced")

    def _fail_timeouts(self, expired: list[_Running], what: str) -> None:
        failures: list[Failure] = [
            (
                r.job.id,
                r.job.attempt,
                f"TimeoutError: job ran longer than {r.timeout_s:g} s; {what}",
                True,
                round(self.backoff_s(r.job, self._rng) * 1e6),
                "timeout",
                "",
                "",
            )
            for r in expired
        ]
        try:
            self.queue._fail(failures)
        except redis.RedisError as exc:
            log.warning("could not record timeouts (leases will expire instead): %s", exc)

    def _watch_children(self) -> None:
        with self._children_lock:
            if not self._stopping.is_set():
                self._watch_children_locked()

    def _watch_children_locked(self) -> None:
        for child in self._children:
            running = child.running()
            if running and running.deadline and time.monotonic() >= running.deadline:
                child.kill()
                child.clear_slot()
                self._fail_timeouts([running], "its worker process was killed")
            if not child.alive():
                child.give_back(
                    "crashed", f"worker process {child.pid} died ({child.exit_reason()})"
                )
                self.queue._deregister([child.worker_id])
                child.spawn()

    # --- used by workers ------------------------------------------------------------------

    def backoff_s(self, job: Dequeued, rng: random.Random) -> float:
        """The delay before the job's next attempt, from the queue's retry policy."""
        return self.queue.config.retry.delay_s(
            job.attempt, previous_s=job.previous_delay_s, rng=rng
        )

    def _timeout_for(self, spec: TaskSpec) -> float | None:
        return spec.timeout_s if spec.timeout_s is not None else self.job_timeout_s


class _ThreadWorker(threading.Thread):
    """One worker: lease jobs, run them, settle them; block while the queue is empty.

    Each round trip settles the jobs finished since the last one and leases the next batch.
    The batch is sized to about ``pool.prefetch_s`` of work at the recent mean service
    time (one job at a time for slow jobs), so prefetching never holds a ready job back
    for long. Attempt start and end are Redis ``TIME`` at the lease plus this thread's
    monotonic elapsed time, so settling in batches does not shift them.
    """

    def __init__(self, pool: WorkerPool, index: int) -> None:
        super().__init__(name=f"jobsim-worker-{pool.id}-{index}", daemon=True)
        self.pool = pool
        self.worker_id = f"{pool.id}-{index}"
        self.rng = random.Random(f"{pool.seed}:{self.worker_id}")
        self.running: _Running | None = None
        self._lock = threading.Lock()  # guards the lists below against the heartbeat's reads
        self._buffer: deque[Dequeued] = deque()
        self._done: list[Completion] = []
        self._failed: list[Failure] = []
        self._anchor = (0, 0.0)  # (Redis TIME µs, time.monotonic()) of the last lease
        self._service_s: float | None = None  # moving average of run times

    def leases(self) -> list[tuple[str, int]]:
        """Every lease this worker holds: buffered, running, and finished but not settled."""
        with self._lock:
            held = [(j.id, j.attempt) for j in self._buffer]
            held += [(c[0], c[1]) for c in self._done] + [(f[0], f[1]) for f in self._failed]
        running = self.running
        if running is not None:
            held.append((running.job.id, running.job.attempt))
        return held

    def run(self) -> None:
        pool = self.pool
        pause = 0.05
        while not pool._stopping.is_set():
            try:
                if self._buffer or self._refill():
                    self._execute(self._buffer.popleft())
                pause = 0.05
            except redis.RedisError as exc:
                # Redis restarting or the connection dropped: unsettled results are kept and
                # sent again (a replay is harmless); leases we lose expire and are redelivered.
                log.warning("worker %s: %s; retrying in %.2f s", self.worker_id, exc, pause)
                pool._stopping.wait(pause)
                pause = min(pause * 2, 1.0)
        self._settle_and_return()

    def _refill(self) -> bool:
        """Settle what is finished and lease a new batch; block if there is none."""
        queue = self.pool.queue
        with self._lock:
            done, failed = list(self._done), list(self._failed)
        exchange = queue._exchange(self.worker_id, self._batch_size(), done, failed)
        with self._lock:
            del self._done[: len(done)], self._failed[: len(failed)]
            self._buffer.extend(exchange.jobs)
        self._anchor = (exchange.now_us, time.monotonic())
        for job_id in exchange.fenced:
            log.info("worker %s: late result for job %s was fenced", self.worker_id, job_id)
        if exchange.jobs:
            return True
        due = exchange.next_due_s
        block = IDLE_BLOCK_MAX_S if due is None else min(due, IDLE_BLOCK_MAX_S)
        queue._wait_for_work(max(block, 0.001), self.pool._stop_key)
        return False

    def _batch_size(self) -> int:
        if self._service_s is None or self.pool.prefetch_s <= 0:
            return 1
        return max(1, min(MAX_PREFETCH, int(self.pool.prefetch_s / max(self._service_s, 1e-6))))

    def _settle_and_return(self) -> None:
        """On stop: send unsettled results, and put never-started jobs back in the queue."""
        try:
            if self._done or self._failed:
                self.pool.queue._exchange(self.worker_id, 0, self._done, self._failed)
            self.pool.queue._unlease(list(self._buffer))
        except redis.RedisError as exc:
            log.warning(
                "worker %s could not settle on stop (leases will expire): %s", self.worker_id, exc
            )

    def _server_us(self, mono: float) -> str:
        now_us, anchor = self._anchor
        return str(now_us + int((mono - anchor) * 1e6))

    def _execute(self, job: Dequeued) -> None:
        pool, queue = self.pool, self.pool.queue
        started = time.monotonic()
        try:
            spec = queue.registry.get(job.task)
        except InvalidInputError as exc:
            self._record(job, ("permanent", str(exc)), started, started)
            return
        timeout = pool._timeout_for(spec)
        deadline = started + timeout if timeout else None
        self.running = _Running(job, deadline, timeout)
        if pool._slot is not None:
            _write_slot(pool._slot, job, deadline, timeout)
        if deadline is not None:
            pool._wakeup.set()
        ctx = JobContext(job.id, job.attempt, self.worker_id, pool._slot is not None)
        try:
            result = spec.run(json.loads(job.payload), ctx)
            outcome: tuple[str, Any] = ("ok", _encode_result(result))
        except AbandonJob:
            outcome = ("abandon", None)
        except PermanentError as exc:
            outcome = ("permanent", _describe(exc))
        except Exception as exc:
            outcome = ("retry", _describe(exc))
        ended = time.monotonic()
        run_s = ended - started
        self._service_s = run_s if self._service_s is None else 0.8 * self._service_s + 0.2 * run_s
        self._record(job, outcome, started, ended)

    def _record(
        self, job: Dequeued, outcome: tuple[str, Any], started: float, ended: float
    ) -> None:
        """Queue the job's result for the next round trip."""
        kind, detail = outcome
        with self._lock:
            # Cleared under the lock: the supervisor must not time out a job being settled.
            self.running = None
            if kind == "abandon":
                return  # as if the thread died: no result, no heartbeat; the lease expires
            if self.pool._slot is not None:
                _write_slot(self.pool._slot, None, None, None)
            if kind == "ok" and isinstance(detail, _ResultError):
                kind, detail = "permanent", str(detail)
            times = (self._server_us(started), self._server_us(ended))
            if kind == "ok":
                self._done.append((job.id, job.attempt, detail, *times))
            else:
                backoff = self.pool.backoff_s(job, self.rng) if kind == "retry" else 0.0
                self._failed.append(
                    (job.id, job.attempt, detail, kind == "retry", round(backoff * 1e6), "", *times)
                )


class _ResultError(str):
    """A task returned something that is not JSON."""


def _encode_result(result: Any) -> str:
    if result is None:
        return ""
    try:
        return json.dumps(result, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        return _ResultError(f"TypeError: task result is not JSON: {exc}")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]


# --- process mode -------------------------------------------------------------------------


def _write_slot(
    slot: Any, job: Dequeued | None, deadline: float | None, timeout: float | None
) -> None:
    text = "" if job is None else f"{job.id}|{job.attempt}|{deadline or ''}|{timeout or ''}"
    with slot.get_lock():
        slot.value = text.encode()


class _Child:
    """A worker process and the shared slot where it reports the job it is running."""

    def __init__(self, pool: WorkerPool, index: int, url: str) -> None:
        self.pool = pool
        self.index = index
        self.url = url
        self.generation = 0
        self.ctx = mp.get_context("spawn")
        self.slot = self.ctx.Array("c", 512)
        self.process: Any = None

    @property
    def name(self) -> str:
        return f"{self.pool.id}-p{self.index}.{self.generation}"

    @property
    def worker_id(self) -> str:
        return f"{self.name}-0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def sentinel(self) -> int | None:
        return self.process.sentinel if self.process else None

    def spawn(self) -> None:
        if self.process is not None:
            self.generation += 1
        self.clear_slot()
        pool = self.pool
        modules = sorted(
            {s.module for s in default_registry} - {"jobsim.tasks", "__main__", "__mp_main__"}
        )
        spec = _ChildSpec(
            url=self.url,
            queue_name=pool.queue.name,
            config=pool.queue.config,
            modules=modules,
            name=self.name,
            job_timeout_s=pool.job_timeout_s,
            grace_s=pool.grace_s,
            seed=pool.seed,
        )
        process = self.ctx.Process(
            target=_child_main, args=(spec, self.slot), name=self.name, daemon=True
        )
        process.start()
        self.process = process

    def running(self) -> _Running | None:
        with self.slot.get_lock():
            text = bytes(self.slot.value).decode()  # type: ignore[attr-defined]
        if not text:
            return None
        job_id, attempt, deadline, timeout = text.split("|")
        job = Dequeued(job_id, int(attempt), "", "", None, "")
        return _Running(
            job, float(deadline) if deadline else None, float(timeout) if timeout else None
        )

    def clear_slot(self) -> None:
        _write_slot(self.slot, None, None, None)

    def give_back(self, outcome: str, error: str) -> None:
        """Give back whatever lease this (dead) child held, found by its worker id: the slot
        may not name the job yet if the child died between lease and report."""
        self.clear_slot()
        try:
            self.pool.queue._release_worker(self.worker_id, outcome, error)
        except redis.RedisError as exc:
            log.warning(
                "could not give back %s's job (its lease will expire): %s", self.worker_id, exc
            )

    def alive(self) -> bool:
        return bool(self.process and self.process.is_alive())

    def terminate(self) -> None:
        if self.alive():
            self.process.terminate()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.join()

    def join(self, timeout: float) -> None:
        if self.process:
            self.process.join(timeout)

    def exit_reason(self) -> str:
        code = self.process.exitcode if self.process else None
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


@dataclass(frozen=True)
class _ChildSpec:
    url: str
    queue_name: str
    config: QueueConfig
    modules: list[str]
    name: str
    job_timeout_s: float | None
    grace_s: float
    seed: int


def _child_main(spec: _ChildSpec, slot: Any) -> None:
    """Entry point of a worker process: a one-thread pool until SIGTERM."""
    import importlib

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
        grace_s=spec.grace_s,
        seed=spec.seed,
        name=spec.name,
        _slot=slot,
    )
    pool.start()
    while not stop.wait(1.0):  # a bare wait() would not wake for the signal handler
        pass
    pool.stop()
