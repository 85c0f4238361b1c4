"""One worker thread: lease jobs, run them, settle them; block while the queue is empty.

Each round trip settles the jobs finished since the last one and leases the next batch,
sized to about ``prefetch_s`` of work at the recent mean run time (one job at a time for
slow jobs), so prefetching never holds a ready job back for long. A result waits at most
about ``settle_after_s`` to be sent: if the next job runs longer, the supervisor sends it.
Attempt start and end are Redis ``TIME`` at the lease plus this thread's monotonic elapsed
time, so settling in batches does not shift them.

The thread keeps exact books of what it holds (see :mod:`jobsim.books`). It talks to the
group that runs it through the small :class:`WorkerHost` protocol, and reports its leases
beyond its own memory through a :class:`Report` (a worker process's shared slot).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Protocol

import redis

from jobsim.books import Holdings, Running
from jobsim.errors import PermanentError, UnknownTaskError
from jobsim.failures import Failure
from jobsim.logs import JobLog
from jobsim.pool_settings import MAX_PREFETCH, PoolSettings
from jobsim.queue import JobQueue
from jobsim.scripts import Ack, Dequeued, Nack
from jobsim.tasks import AbandonJob, JobContext

log = logging.getLogger("jobsim.worker")

IDLE_BLOCK_MAX_S = 2.0  # longest single block on the wake list (below client socket timeouts)


class WorkerHost(Protocol):
    """What a worker thread needs from the group that runs it."""

    queue: JobQueue
    settings: PoolSettings
    pool_id: str
    stop_key: str  # a list the group pushes to, to wake its blocked workers when stopping
    stopping: threading.Event
    discarded: list[str]  # finished jobs whose results an injected crash lost

    def take_back(self, worker_id: str, holdings: Holdings, *, outcome: str, error: str) -> None:
        """Settle or give back leases the worker itself will not."""

    def backoff_s(self, job: Dequeued, rng: random.Random) -> float:
        """The delay before the job's next attempt."""

    def nudge(self) -> None:
        """Wake the supervisor (a job with a deadline started, or results wait)."""


@dataclass(frozen=True)
class _Request:
    """One DEQUEUE call, kept until its reply arrives so it can be sent again as is."""

    id: str
    count: int
    done: list[Ack]
    failed: list[Nack]


class Report(Protocol):
    """Where a worker reports its leases beyond its own memory (a worker process's slot).

    The worker reports each batch it leased, each job it takes from the batch (before
    anything else happens to it, so a job that fails before it starts is still accounted
    for), when the taken job starts running (with its deadline) and when it ends.
    """

    def batch(self, jobs: list[Dequeued]) -> None: ...
    def taken(self, job: Dequeued) -> None: ...
    def started(self, running: Running) -> None: ...
    def cancelling(self, running: Running) -> None: ...
    def finished(self) -> None: ...


class NoReport:
    """The report of a worker whose own memory is all there is (a thread in this process)."""

    def batch(self, jobs: list[Dequeued]) -> None:
        pass

    def taken(self, job: Dequeued) -> None:
        pass

    def started(self, running: Running) -> None:
        pass

    def cancelling(self, running: Running) -> None:
        pass

    def finished(self) -> None:
        pass


class ThreadWorker(threading.Thread):
    """A worker thread; ``host`` is the group that runs it."""

    def __init__(self, host: WorkerHost, index: int, report: Report | None = None) -> None:
        super().__init__(name=f"jobsim-worker-{host.pool_id}-{index}", daemon=True)
        self.host = host
        self.worker_id = f"{host.pool_id}-{index}"
        self.rng = random.Random(f"{host.settings.seed}:{index}")
        self.report = report or NoReport()
        self.in_process_worker = report is not None
        self.running: Running | None = None
        self._lock = threading.Lock()  # guards the books below against the supervisor
        self._buffer: deque[Dequeued] = deque()
        self._done: list[Ack] = []
        self._failed: list[Nack] = []
        self._pending: _Request | None = None  # a DEQUEUE whose reply was lost
        self._unsettled_since = 0.0
        self._anchor = (0, 0.0)  # (Redis TIME µs, time.monotonic()) of the last lease
        self._service_s: float | None = None  # moving average of run times
        self._cancelling: set[str] = set()  # held jobs whose cancel was requested
        self.crash_requested = False  # fault injection: die when the running job ends

    # --- the books, shared with the supervisor ---------------------------------------------

    def leases(self) -> list[tuple[str, int]]:
        """Every lease this worker holds, for the heartbeat."""
        with self._lock:
            held = [(j.id, j.token) for j in self._buffer]
            held += [(a.id, a.token) for a in self._done] + [(n.id, n.token) for n in self._failed]
            if self.running is not None:
                held.append((self.running.job.id, self.running.job.token))
        return held

    def take_holdings(self) -> Holdings:
        """Hand every lease over (a hung job, or a stop after the grace period).

        If the running job later finishes, its result is still sent, and is fenced.
        """
        with self._lock:
            holdings = Holdings(
                done=self._done, failed=self._failed, running=self.running,
                unstarted=list(self._buffer),
            )  # fmt: skip
            self._done, self._failed, self.running = [], [], None
            self._buffer.clear()
        return holdings

    def take_holdings_if_running(self, running: Running) -> Holdings | None:
        """Hand every lease over if ``running`` is still the running job (its timeout is
        being enforced); None if it ended meanwhile, so a job that started since is not
        taken from a healthy worker."""
        with self._lock:
            if self.running is not running:
                return None
        return self.take_holdings()

    def cancel(self, job_ids: set[str], grace_s: float) -> None:
        """Held jobs whose cancel was requested: the running one's task is told (its lease is
        taken back ``grace_s`` from now if it runs on); an unstarted one will not start."""
        with self._lock:
            self._cancelling |= job_ids
            running = self.running
            if running is None or running.job.id not in job_ids or running.cancel_deadline:
                return
            running.cancel_deadline = time.monotonic() + grace_s
            running.cancel_event.set()
        self.report.cancelling(running)
        self.host.nudge()

    def unsettled_since(self) -> float | None:
        """When the oldest result still waiting to be sent was booked, if any."""
        with self._lock:
            return self._unsettled_since if (self._done or self._failed) else None

    def take_unsettled(self) -> Holdings:
        """Hand over the finished results (the supervisor sends them while a job runs long)."""
        with self._lock:
            holdings = Holdings(done=self._done, failed=self._failed)
            self._done, self._failed = [], []
        return holdings

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        host = self.host
        pause = 0.05
        try:
            while not host.stopping.is_set():
                try:
                    job = self._next_job()
                    if job is not None:
                        self._execute(job)
                    pause = 0.05
                except redis.RedisError as exc:
                    # Redis restarting or the connection dropped: results are kept and sent
                    # again (a replay is harmless); leases we lose expire and are redelivered.
                    log.warning("worker %s: %s; retrying in %.2f s", self.worker_id, exc, pause)
                    host.stopping.wait(pause)
                    pause = min(pause * 2, 1.0)
        finally:
            self._settle_on_exit()

    def _next_job(self) -> Dequeued | None:
        with self._lock:
            stale = bool(self._done or self._failed) and (
                time.monotonic() - self._unsettled_since > self.host.settings.settle_after_s
            )
            empty = not self._buffer
        if stale or empty:
            self._exchange(count=self._batch_size() if empty else 0)
        with self._lock:
            return self._buffer.popleft() if self._buffer else None

    def _exchange(self, count: int, *, block: bool = True) -> None:
        """Settle what is finished; lease up to ``count`` jobs, blocking if there are none.

        A call whose reply was lost (the connection dropped after Redis ran it) is sent
        again unchanged, request id included, so it leases once: Redis hands back the
        reply it kept.
        """
        leases = self.host.queue.leases
        if self._pending is None:
            with self._lock:
                done, failed = list(self._done), list(self._failed)
            self._pending = _Request(uuid.uuid4().hex, count, done, failed)
        request = self._pending
        exchange = leases.exchange(
            self.worker_id, request.count, request.done, request.failed, request_id=request.id
        )
        self._pending = None
        sent = {(a.id, a.token) for a in request.done} | {(n.id, n.token) for n in request.failed}
        with self._lock:
            # By identity, not position: take_holdings() may have swapped the lists meanwhile.
            self._done = [a for a in self._done if (a.id, a.token) not in sent]
            self._failed = [n for n in self._failed if (n.id, n.token) not in sent]
            self._buffer.extend(exchange.jobs)
        for job_id in exchange.fenced:
            log.info("worker %s: late result for job %s was fenced", self.worker_id, job_id)
        if request.count == 0:
            return
        self._anchor = (exchange.now_us, time.monotonic())
        self.report.batch(exchange.jobs)
        if block and not exchange.jobs:
            due = exchange.next_due_s
            wait_s = IDLE_BLOCK_MAX_S if due is None else min(due, IDLE_BLOCK_MAX_S)
            leases.wait_for_work(max(wait_s, 0.001), self.host.stop_key)

    def _batch_size(self) -> int:
        prefetch_s = self.host.settings.prefetch_s
        if self._service_s is None or prefetch_s <= 0:
            return 1
        return max(1, min(MAX_PREFETCH, int(prefetch_s / max(self._service_s, 1e-6))))

    def _settle_on_exit(self) -> None:
        """Stopping (or dying): send results, put never-started jobs back in the queue."""
        self._recover_pending()
        holdings = self.take_holdings()
        if holdings.running is not None:  # only if the loop itself broke mid-job
            self.host.take_back(
                self.worker_id, holdings, outcome="crashed", error="worker thread died mid-job"
            )
        else:
            self.host.take_back(self.worker_id, holdings, outcome="interrupted", error="")

    def _recover_pending(self) -> None:
        """A leasing call whose reply never came: ask once more, so its jobs go back now
        instead of waiting out their leases."""
        if self._pending is None or self._pending.count == 0:
            return
        with contextlib.suppress(redis.RedisError):  # if not, its leases expire
            self._exchange(self._pending.count, block=False)

    # --- one job ----------------------------------------------------------------------------

    def _execute(self, job: Dequeued) -> None:
        host = self.host
        started = time.monotonic()
        self.report.taken(job)
        try:
            spec = host.queue.registry.get(job.task)
        except UnknownTaskError as exc:
            # Another worker may know the task: a retryable failure, not a permanent one.
            failure = Failure(f"{exc} (on worker {self.worker_id})")
            self._job_log(job).warning("job failed: %s", failure.error)
            self._record(job, ("retry", failure), started, started)
            return
        if job.id in self._cancelling:  # cancelled before it started: it never runs
            self._record(
                job, ("cancelled", Failure("JobCancelledError: cancelled")), started, started
            )
            return
        timeout = host.settings.timeout_for(spec)
        running = Running(job, started + timeout if timeout else None, timeout)
        with self._lock:
            self.running = running
        self.report.started(running)
        self.cancel({job.id} & self._cancelling, host.settings.grace_s)
        if running.deadline is not None or self.unsettled_since() is not None:
            host.nudge()  # the supervisor watches the deadline, and sends the results
        ctx = JobContext(
            job.id, job.attempt, self.worker_id, self.in_process_worker, running.cancel_event
        )
        job_log = self._job_log(job)
        job_log.debug("job started")
        try:
            result = spec.run(json.loads(job.payload), ctx)
            outcome: tuple[str, Any] = ("ok", _encode_result(result))
        except AbandonJob:
            outcome = ("abandon", None)
            job_log.warning("job abandoned: no result; its lease will expire")
        except BaseException as exc:  # SystemExit from a task fails the job, not the worker
            kind = "permanent" if isinstance(exc, PermanentError) else "retry"
            outcome = (kind, Failure.of(exc))
            job_log.warning("job failed (%s): %s", kind, outcome[1].error, exc_info=exc)
        ended = time.monotonic()
        run_s = ended - started
        if outcome[0] == "ok":
            job_log.debug("job completed in %.3f s", run_s)
        self._service_s = run_s if self._service_s is None else 0.8 * self._service_s + 0.2 * run_s
        self._record(job, outcome, started, ended)

    def _job_log(self, job: Dequeued) -> JobLog:
        return JobLog(log, job.id, job.task, job.attempt, self.worker_id)

    def _record(
        self, job: Dequeued, outcome: tuple[str, Any], started: float, ended: float
    ) -> None:
        """Book the job's result for the next round trip."""
        kind, detail = outcome
        self.report.finished()
        with self._lock:
            self.running = None
            self._cancelling.discard(job.id)
            if self.crash_requested:  # an injected crash: everything this thread held is lost
                self.crash_requested = False
                lost = [a.id for a in self._done] + [n.id for n in self._failed] + [job.id]
                self.host.discarded.extend(lost)
                self._done, self._failed = [], []
                self._buffer.clear()
                return
            if kind == "abandon":
                return  # as if the thread died: no result, no heartbeat; the lease expires
            if kind == "ok" and isinstance(detail, _ResultError):
                kind, detail = "permanent", Failure(str(detail))
            times = (self._server_us(started), self._server_us(ended))
            if not (self._done or self._failed):
                self._unsettled_since = ended
            if kind == "ok":
                self._done.append(Ack(job.id, job.token, detail, *times))
            else:
                backoff = self.host.backoff_s(job, self.rng) if kind == "retry" else 0.0
                retry = kind == "retry"
                backoff_us = round(backoff * 1e6)
                nack = Nack(job.id, job.token, detail.error, retry, backoff_us, "", *times)
                self._failed.append(replace(nack, traceback=detail.traceback))

    def _server_us(self, mono: float) -> str:
        now_us, anchor = self._anchor
        return str(now_us + int((mono - anchor) * 1e6))


class _ResultError(str):
    """A task returned something that is not JSON."""


def _encode_result(result: Any) -> str:
    if result is None:
        return ""
    try:
        encoded = json.dumps(result, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        encoded.encode("utf-8")  # refuses lone surrogates, which no reader could decode
    except UnicodeEncodeError:  # before ValueError, which it subclasses
        return _ResultError("TypeError: task result is not JSON: text is not valid Unicode")
    except (TypeError, ValueError, RecursionError) as exc:
        return _ResultError(f"TypeError: task result is not JSON: {exc}")
    return encoded
