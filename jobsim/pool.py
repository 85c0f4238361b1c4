"""Worker pools: threads in this process, or supervised worker processes.

One supervisor thread per pool heartbeats the leases its worker threads hold, keeps the
worker registry fresh and enforces per-job timeouts. A thread cannot be killed: a hung
job's lease is failed as a timeout (its late result is fenced) and the rest of that
worker's leases are taken back so no other job waits behind it. In ``process`` mode (see
:mod:`jobsim.procs`) each worker is a child process; the parent kills a child whose job
ran past its timeout, takes back the leases of a child that died, and starts a new one.
On the embedded backend the children reach the parent's in-process server through a
private Unix-socket bridge (:func:`jobsim.connection.serve_embedded`).
"""

from __future__ import annotations

import json
import logging
import multiprocessing.connection
import os
import random
import signal
import socket
import sys
import threading
import time
import uuid
from types import TracebackType
from typing import Any, Literal

import redis

from jobsim.connection import client_url
from jobsim.errors import InvalidInputError
from jobsim.procs import Child, ChildSpec
from jobsim.queue import JobQueue
from jobsim.scripts import Dequeued, GiveBack, Nack
from jobsim.tasks import TaskSpec
from jobsim.tasks import registry as default_registry
from jobsim.worker import Holdings, Running, ThreadWorker

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
        if mode == "process" and queue.registry is not default_registry:
            raise InvalidInputError(
                "process workers use the default task registry; register the tasks with "
                "@jobsim.task, or use mode='thread'",
                field="mode",
                value=mode,
            )
        self.queue = queue
        self.concurrency = concurrency
        self.mode: Mode = mode
        self.job_timeout_s = job_timeout_s
        self.grace_s = grace_s
        self.prefetch_s = prefetch_s
        self.settle_after_s = max(2 * prefetch_s, 0.005)  # longest a result waits unsent
        self.seed = seed
        self.id = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self._slot = _slot  # set in a worker process: where its one thread reports
        self._stop_key = queue.keys.stop(self.id)
        self._stopping = threading.Event()  # workers take no new jobs
        self._halt = threading.Event()  # the supervisor exits (after the workers stopped)
        self._wakeup = threading.Event()
        self._rng = random.Random(f"{seed}:supervisor")
        self.discarded: list[str] = []  # finished jobs whose results an injected crash lost
        self._threads: list[ThreadWorker] = []
        self._children: list[Child] = []
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
            spec = self._child_spec()
            self._children = [Child(self.id, i, spec) for i in range(self.concurrency)]
            for child in self._children:
                child.spawn()
        else:
            self._threads = [ThreadWorker(self, i, self._slot) for i in range(self.concurrency)]
            for thread in self._threads:
                thread.start()
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"jobsim-supervisor-{self.id}", daemon=True
        )
        self._supervisor.start()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop gracefully: no new jobs; in-flight jobs get ``grace_s`` to finish, then their
        leases are given back (the attempt counts) so another worker runs them. Leased jobs
        not yet started go back to their place in the queue, attempts untouched."""
        if self._supervisor is None or self._stopping.is_set():
            return
        grace = self.grace_s if grace_s is None else grace_s
        self._stopping.set()
        deadline = time.monotonic() + grace
        if self.mode == "process":
            with self._children_lock:
                self._stop_children(grace, deadline)
        else:
            self._stop_threads(deadline)
        self._halt.set()
        self._wakeup.set()
        self._supervisor.join()
        try:
            self.queue.leases.deregister(self.worker_ids)
            self.queue.client.delete(self._stop_key)
        except redis.RedisError as exc:
            log.warning("could not deregister pool %s: %s", self.id, exc)

    def _stop_threads(self, deadline: float) -> None:
        try:
            self.queue.leases.wake_stopping(self._stop_key, self.concurrency)
        except redis.RedisError as exc:
            log.warning("could not wake idle workers (they wake within 2 s): %s", exc)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for thread in self._threads:
            if thread.is_alive():
                self._take_back(
                    thread.worker_id,
                    thread.take_holdings(),
                    outcome="interrupted",
                    error="worker pool stopped before the job finished",
                )

    def _stop_children(self, grace: float, deadline: float) -> None:
        for child in self._children:
            child.terminate(grace)
        for child in self._children:
            child.join(max(0.0, deadline - time.monotonic()))
        for child in self._children:
            if child.alive():
                child.kill()
                self._take_back(
                    child.worker_id,
                    child.slot.holdings(),
                    outcome="interrupted",
                    error="worker process stopped before the job finished",
                    catch_all=True,
                )

    def _child_spec(self) -> ChildSpec:
        unreachable = [s.name for s in default_registry if s.module == "__main__"]
        if unreachable and not getattr(sys.modules.get("__main__"), "__file__", None):
            log.warning("process workers cannot load tasks defined here: %s", unreachable)
        modules = {s.module for s in default_registry} - {"jobsim.tasks", "__main__"}
        return ChildSpec(
            url=client_url(self.queue.client),
            queue_name=self.queue.name,
            config=self.queue.config,
            modules=sorted(modules),
            pool_name=self.id,
            job_timeout_s=self.job_timeout_s,
            prefetch_s=self.prefetch_s,
            seed=self.seed,
        )

    # --- taking leases back ---------------------------------------------------------------

    def _take_back(
        self,
        worker_id: str,
        holdings: Holdings,
        *,
        outcome: str,
        error: str,
        catch_all: bool = False,
    ) -> None:
        """Settle a worker's finished jobs, put its unstarted ones back uncounted, and give
        back (or, for a timeout, fail) the one it was running. ``catch_all`` also gives back
        any lease the books missed, for a worker that is gone. Every call quotes the lease
        tokens, so taking back what was already taken back changes nothing."""
        leases = self.queue.leases
        try:
            if holdings.done or holdings.failed:
                leases.exchange(worker_id, 0, holdings.done, holdings.failed)
            leases.unlease(holdings.unstarted)
            given = [GiveBack(job_id, token, outcome, error) for job_id, token in holdings.ran]
            running = holdings.running
            if running is not None and outcome == "timeout":
                leases.fail([self._timeout_failure(running, error)])
            elif running is not None:
                given.append(GiveBack(running.job.id, running.job.token, outcome, error))
            leases.release(given)
            if catch_all:
                leases.release_worker(worker_id, outcome, error)
        except redis.RedisError as exc:
            log.warning("could not take back %s's leases (they will expire): %s", worker_id, exc)

    def _timeout_failure(self, running: Running, what: str) -> Nack:
        error = f"TimeoutError: job ran longer than {running.timeout_s:g} s; {what}"
        backoff = round(self.backoff_s(running.job, self._rng) * 1e6)
        return Nack(running.job.id, running.job.token, error, True, backoff, "timeout")

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
                log.exception("supervisor of pool %s", self.id)
                self._halt.wait(0.5)

    def _wait(self, until_beat: float, now: float) -> None:
        if self.mode == "process":
            with self._children_lock:
                if not self._stopping.is_set():
                    self._watch_children(now)
            sentinels = [c.sentinel for c in self._children if c.sentinel is not None]
            multiprocessing.connection.wait(sentinels, timeout=min(until_beat, 0.1))
            return
        if self._slot is None:  # in a worker process the parent enforces timeouts
            self._enforce_thread_timeouts(now)
        deadlines = [self._settle_stale(now)]
        deadlines += [
            r.deadline for t in self._threads if (r := t.running) is not None and r.deadline
        ]
        wait = min([until_beat, *(d - now for d in deadlines if d is not None)])
        self._wakeup.wait(max(wait, 0.001))
        self._wakeup.clear()

    def _settle_stale(self, now: float) -> float | None:
        """Send results that waited too long behind a long job; return the next such time."""
        upcoming = None
        for thread in self._threads:
            since = thread.unsettled_since()
            if since is None or thread.running is None:
                continue  # between jobs a worker sends its own results
            due = since + self.settle_after_s
            if now >= due:
                self._take_back(thread.worker_id, thread.take_unsettled(), outcome="", error="")
            elif upcoming is None or due < upcoming:
                upcoming = due
        return upcoming

    def _heartbeat(self) -> None:
        if self.mode == "process":
            return  # each child heartbeats its own leases
        for thread in self._threads:
            running = thread.running
            info = self._registry_entry([running.job.id] if running else [])
            try:
                lost = self.queue.leases.heartbeat(thread.worker_id, thread.leases(), info)
            except redis.RedisError as exc:
                log.warning("heartbeat of %s failed: %s", thread.worker_id, exc)
                continue
            for job_id in lost:
                log.info("worker %s lost the lease of job %s", thread.worker_id, job_id)

    def _registry_entry(self, running: list[str]) -> str:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "mode": "process" if self._slot is not None else self.mode,
                "started_at": self._started_at,
                "heartbeat_s": self.queue.config.lease.heartbeat_every_s,
                "running": running,
            }
        )

    def _enforce_thread_timeouts(self, now: float) -> None:
        for thread in self._threads:
            running = thread.running
            if running is not None and running.deadline and now >= running.deadline:
                holdings = thread.take_holdings()
                if holdings.running is running:  # not finished meanwhile
                    self._take_back(
                        thread.worker_id,
                        holdings,
                        outcome="timeout",
                        error="the thread was left running; its result will be fenced",
                    )
                else:
                    self._take_back(thread.worker_id, holdings, outcome="", error="")

    def _watch_children(self, now: float) -> None:
        for child in self._children:
            if child.alive():
                running = child.slot.running()
                if running is None or not running.deadline or now < running.deadline:
                    continue
                child.kill()
                self._take_back(
                    child.worker_id,
                    child.slot.holdings(),
                    outcome="timeout",
                    error="its worker process was killed",
                    catch_all=True,
                )
                self.queue.leases.deregister([child.worker_id])
                child.spawn()
            elif child.respawn_at == 0.0:
                self._take_back(
                    child.worker_id,
                    child.slot.holdings(),
                    outcome="crashed",
                    error=f"worker process {child.pid} died ({child.exit_reason()})",
                    catch_all=True,
                )
                self.queue.leases.deregister([child.worker_id])
                child.schedule_respawn()
            elif now >= child.respawn_at:
                child.respawn_at = 0.0
                child.spawn()

    # --- killing workers on purpose (chaos drills, the simulator's crash faults) -----------

    def busy_worker_ids(self) -> list[str]:
        """Ids of the workers running a job right now."""
        if self.mode == "process":
            with self._children_lock:
                return [c.worker_id for c in self._children if c.alive() and c.slot.running()]
        return [
            t.worker_id for t in self._threads if t.running is not None and not t.crash_requested
        ]

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes (empty in thread mode)."""
        return [c.pid for c in self._children if c.pid is not None]

    def kill_worker(self, worker_id: str) -> None:
        """Kill one worker as a crash would: a process gets SIGKILL (its supervisor then gives
        its leases back and starts a new one); a thread loses every lease it holds when its
        running job ends (no result sent, no heartbeat), as if it had died, and the jobs it
        had finished run again (:attr:`discarded` lists them).

        Raises:
            InvalidInputError: no such worker in this pool.
        """
        if self.mode == "process":
            with self._children_lock:
                child = next((c for c in self._children if c.worker_id == worker_id), None)
                if child is None or child.pid is None:
                    raise InvalidInputError("no such worker", field="worker_id", value=worker_id)
                os.kill(child.pid, signal.SIGKILL)
                child.join(5.0)  # dead before anyone picks a victim again
                return
        thread = next((t for t in self._threads if t.worker_id == worker_id), None)
        if thread is None:
            raise InvalidInputError("no such worker", field="worker_id", value=worker_id)
        thread.crash_requested = True

    # --- used by workers ------------------------------------------------------------------

    def backoff_s(self, job: Dequeued, rng: random.Random) -> float:
        """The delay before the job's next attempt, from the queue's retry policy."""
        return self.queue.config.retry.delay_s(
            job.backoff_attempt, previous_s=job.previous_delay_s, rng=rng
        )

    def _timeout_for(self, spec: TaskSpec) -> float | None:
        return spec.timeout_s if spec.timeout_s is not None else self.job_timeout_s
