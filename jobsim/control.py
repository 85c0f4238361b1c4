"""Controlling jobs already submitted: cancel one, wait for one without polling, pause and
resume the whole queue. Each call is one script of :mod:`jobsim.scripts` (or a blocking
pop), safe to re-send; :class:`jobsim.JobQueue` offers them as its own methods.

Waiting works by notification, not polling: :meth:`Control.wait` marks the job ``waited``
and reads its status in one script; every terminal transition of a waited job (ack,
dead-letter, cancel) pushes a token to the job's notification list
(:meth:`jobsim.keys.Keys.notify`, expiring after :data:`NOTIFY_TTL_S`), on which the waiter
blocks with ``BLPOP``. Check, block, re-check: a token pushed between the check and the
block is still there when the block starts, so no completion is missed.
"""

from __future__ import annotations

import math
import time
from typing import Any, cast

import redis

from jobsim.errors import (
    InvalidInputError,
    JobFinishedError,
    JobNotFoundError,
    WaitTimeoutError,
)
from jobsim.keys import Keys
from jobsim.models import TERMINAL, Job, JobStatus
from jobsim.requests import possible_id
from jobsim.scripts import Scripts

MAX_WAIT_S = 3600.0
"""Longest one :meth:`Control.wait` may block."""
NOTIFY_TTL_S = 60.0
"""How long a terminal transition's token stays in a waited job's notification list (the
scripts push it with this TTL, in ms)."""


class Control:
    """Cancel, wait and pause for one queue.

    Args:
        client: the queue's Redis client.
        keys: the queue's key names.
        scripts: the queue's scripts on that client.
    """

    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts) -> None:
        self.client = client
        self.keys = keys
        self.scripts = scripts

    def cancel(self, job_id: str) -> bool:
        """Cancel a job, atomically.

        A scheduled, queued or retrying job is ``cancelled`` at once and never runs. A
        running job is asked to stop: its worker learns it at its next heartbeat, the task
        sees it through its :class:`jobsim.tasks.JobContext` (``ctx.cancelled``), and the
        job ends ``cancelled`` however the attempt ends — a thread task that ignores it has
        its lease taken back after the pool's ``grace_s``, a process task is killed then.
        A late result of a cancelled job is refused and counted ``fenced``. Cancelling an
        already cancelled job answers ``True`` again; the call is safe to re-send.

        Example:
            >>> queue.cancel(job_id)                                    # doctest: +SKIP
            True

        Returns:
            ``True``: the job is cancelled, or will be once its running attempt ends.

        Raises:
            JobNotFoundError: no such job.
            JobFinishedError: the job already completed or failed.
            InvalidInputError: ``job_id`` is not a string.
        """
        if not possible_id(job_id):
            raise JobNotFoundError(job_id)
        try:
            self.scripts.cancel(job_id)
        except redis.ResponseError as exc:
            words = str(exc).split()
            if words[:1] == ["MISSING"]:
                raise JobNotFoundError(job_id) from None
            if words[:1] != ["FINISHED"]:
                raise
            raise JobFinishedError(
                f"job {job_id!r} is already {words[-1]}; only an unfinished job can be cancelled",
                job_id=job_id,
                status=words[-1],
            ) from None
        return True

    def wait(self, job_id: str, timeout_s: float = 10.0) -> Job:
        """Block until the job is completed, failed or cancelled, without polling.

        Example:
            >>> queue.wait(queue.submit("noop"), timeout_s=5).status      # doctest: +SKIP
            <JobStatus.COMPLETED: 'completed'>

        Args:
            job_id: the job.
            timeout_s: longest wait, ``0..MAX_WAIT_S`` seconds (0: check once).

        Returns:
            The job's record once it is finished.

        Raises:
            WaitTimeoutError: still unfinished after ``timeout_s``.
            JobNotFoundError: no such job (or its record was dropped meanwhile).
            InvalidInputError: a bad ``timeout_s``, or ``job_id`` not a string.
        """
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
            raise InvalidInputError(
                "timeout_s must be a number of seconds", field="timeout_s", value=timeout_s
            )
        if not (math.isfinite(timeout_s) and 0 <= timeout_s <= MAX_WAIT_S):
            raise InvalidInputError(
                f"timeout_s must be in 0..{MAX_WAIT_S:g} seconds",
                field="timeout_s",
                value=timeout_s,
            )
        if not possible_id(job_id):
            raise JobNotFoundError(job_id)
        deadline = time.monotonic() + timeout_s
        woke = False
        while True:
            status = self.scripts.watch_job(job_id)
            if not status:
                raise JobNotFoundError(job_id)
            if JobStatus(status) in TERMINAL:
                if woke:  # put the token back for any other waiter of the same job
                    self._pass_on(job_id)
                return self._record(job_id)
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeoutError(job_id, status, timeout_s)
            block: Any = max(round(left, 3), 0.001)  # Redis >= 6 takes fractional seconds
            woke = self.client.blpop([self.keys.notify(job_id)], timeout=block) is not None

    def _pass_on(self, job_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.keys.notify(job_id), "1")
        pipe.pexpire(self.keys.notify(job_id), round(NOTIFY_TTL_S * 1000))
        pipe.execute()

    def _record(self, job_id: str) -> Job:
        fields = cast(dict[str, str], self.client.hgetall(self.keys.job(job_id)))
        if not fields:
            raise JobNotFoundError(job_id)
        return Job.from_hash(job_id, fields)

    def pause(self) -> bool:
        """Pause the queue: workers start no new job (they keep the leases they hold, keep
        heartbeating them and settle what finishes); submits are still accepted. Jobs a
        worker already leased ahead (at most its ``prefetch_s`` of work) still run.

        Returns:
            Whether it was already paused before this call (pausing twice is harmless; a
            call re-sent after a lost reply still gets its first answer).
        """
        return self.scripts.pause(True)

    def resume(self) -> bool:
        """Resume a paused queue and wake its idle workers; returns whether it was paused."""
        return self.scripts.pause(False)

    @property
    def paused(self) -> bool:
        """Whether the queue is paused now."""
        return bool(self.client.exists(self.keys.paused))
