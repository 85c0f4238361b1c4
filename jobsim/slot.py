"""The shared slot a worker process reports its leases in, for its parent to read.

A child writes the batch it leased and how far it got; after killing it or finding it dead,
the parent reads which leased jobs never started (put back, attempt not counted), which one
was running (attempt counted) and whether that one's cancel was requested.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from typing import Any

from jobsim.books import Holdings, Running
from jobsim.pool_settings import MAX_PREFETCH
from jobsim.scripts import Dequeued

_LINE_BYTES = 256  # one slot line: an id of at most 128 characters, numbers and a score
_BATCH_BYTES = MAX_PREFETCH * _LINE_BYTES  # room for a full prefetch batch: never truncated
_READ_TRIES = 2000  # a torn read is retried; a writer that died mid-write never finishes

CONTEXT = mp.get_context("spawn")  # fork is unsafe in a process that runs threads
# Two threads of a child write its slot (the worker; its supervisor, on a cancel): one at a
# time, or the seqlock's version could be left odd. A thread lock of this process only, so a
# SIGKILLed child leaves nothing held for its parent.
_WRITING = threading.Lock()


class Slot:
    """Shared memory between a worker process and its parent.

    The child writes the batch it leased (id, token, attempt numbers, score, previous
    delay), how many of those jobs it has taken, and whether the last one taken is running.
    A job counts as taken before anything can happen to it (even a task unknown to the
    worker), so the parent's view never slips by one: the taken jobs ran (their attempts
    count), the rest never started (put back uncounted).

    There is no lock a SIGKILL could leave held: the child is the only writer and bumps a
    version number before and after each write (a seqlock); the parent re-reads until the
    version is even and unchanged. A child killed mid-write leaves an odd version, and the
    parent then knows only that it cannot trust the slot.
    """

    def __init__(self) -> None:
        self._version: Any = CONTEXT.Value("Q", 0, lock=False)
        self._batch: Any = CONTEXT.Array("c", _BATCH_BYTES, lock=False)
        self._taken: Any = CONTEXT.Value("i", 0, lock=False)
        self._busy: Any = CONTEXT.Value("b", 0, lock=False)
        self._deadline: Any = CONTEXT.Value("d", 0.0, lock=False)
        self._timeout: Any = CONTEXT.Value("d", 0.0, lock=False)
        self._cancel: Any = CONTEXT.Value("d", 0.0, lock=False)  # cancel deadline, 0 = none
        self.grace_s: Any = CONTEXT.Value("d", 5.0, lock=False)  # set by the parent on stop

    def _write(self, **values: Any) -> None:
        with _WRITING:
            self._version.value += 1  # odd: a write is under way
            for name, value in values.items():
                getattr(self, name).value = value
            self._version.value += 1

    # the child's side (a worker.Report)

    def batch(self, jobs: list[Dequeued]) -> None:
        text = "\n".join(_line(j) for j in jobs).encode()
        if len(text) > _BATCH_BYTES:  # cannot happen: MAX_PREFETCH lines of <= 256 bytes
            raise ValueError(f"a batch of {len(jobs)} jobs does not fit the slot")
        self._write(_batch=text, _taken=0, _busy=0)

    def taken(self, job: Dequeued) -> None:
        self._write(_taken=self._taken.value + 1, _busy=0)  # only the worker thread writes this

    def started(self, running: Running) -> None:
        self._write(
            _busy=1, _deadline=running.deadline or 0.0, _timeout=running.timeout_s or 0.0,
            _cancel=0.0,
        )  # fmt: skip

    def cancelling(self, running: Running) -> None:
        self._write(_cancel=running.cancel_deadline or 0.0)

    def finished(self) -> None:
        self._write(_busy=0)

    # the parent's side

    def running(self) -> Running | None:
        """The job the child is running now, if any."""
        holdings = self.holdings()
        return holdings.running if holdings is not None else None

    def holdings(self) -> Holdings | None:
        """What the child holds: its batch, split by how far it got; None if the slot was
        left mid-write by a child that died then (its leases must be found otherwise)."""
        for _ in range(_READ_TRIES):
            before = self._version.value
            if before % 2 == 0:
                text = bytes(self._batch.value).decode()
                taken, busy = self._taken.value, self._busy.value
                deadline, timeout = self._deadline.value, self._timeout.value
                cancel = self._cancel.value
                if self._version.value == before:
                    break
            time.sleep(0.0001)
        else:
            return None
        jobs = [_parse(line) for line in text.splitlines() if line]
        holdings = Holdings(unstarted=jobs[taken:])
        ran = jobs[:taken]
        if busy and ran:
            job = ran.pop()
            holdings.running = Running(job, deadline or None, timeout or None)
            holdings.running.cancel_deadline = cancel or None
        holdings.ran = [(j.id, j.token) for j in ran]
        return holdings


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
