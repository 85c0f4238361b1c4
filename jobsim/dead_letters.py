"""The dead-letter queue's admin: requeue one dead letter, requeue all of them, purge them.

A job whose attempts are used up ends ``failed`` in the dead-letter queue with every
attempt's error. Requeueing gives it ``max_retries + 1`` fresh attempts and a fresh backoff;
purging deletes it and its record. Each call is one script of :mod:`jobsim.scripts`, safe to
re-send; :class:`jobsim.JobQueue` offers them as its own methods.
"""

from __future__ import annotations

import redis

from jobsim.clusters import mapped_errors
from jobsim.connection import server_time_s, shown_url
from jobsim.errors import InvalidStateError, JobNotFoundError
from jobsim.requests import possible_id
from jobsim.scripts import Scripts

BATCH = 1000
"""Dead letters per script call when requeueing or purging all of them."""


class DeadLetters:
    """Requeue and purge the dead letters of one queue.

    Args:
        client: the queue's Redis client.
        scripts: the queue's scripts on that client.
        band_us: the queue's priority band (:attr:`jobsim.QueueConfig.band_us`).
    """

    def __init__(self, client: redis.Redis, scripts: Scripts, band_us: int) -> None:
        self.client = client
        self.scripts = scripts
        self.band_us = band_us
        self._shown = shown_url(client)  # for errors: password masked

    def requeue(self, job_id: str) -> None:
        """Move one dead letter back to the queue, with ``max_retries + 1`` fresh attempts.

        Raises:
            JobNotFoundError: no such job.
            InvalidStateError: the job is not in the dead-letter queue.
            InvalidInputError: ``job_id`` is not a string.
        """
        if not possible_id(job_id):  # also keeps NUL, which ends a Lua error reply, out
            raise JobNotFoundError(job_id)
        try:
            with mapped_errors(self._shown):
                self.scripts.requeue_dead(self.band_us, [job_id])
        except redis.ResponseError as exc:
            if "NOTDEAD" not in str(exc):
                raise
            status = str(exc).split()[-1]
            if status == "missing":
                raise JobNotFoundError(job_id) from None
            raise InvalidStateError(
                f"job {job_id!r} is {status}, not in the dead-letter queue",
                job_id=job_id,
                status=status,
            ) from None

    def requeue_all(self) -> int:
        """Move every job dead-lettered before this call back to the queue; returns how many.

        Jobs that fail again while this runs stay in the dead-letter queue.
        """
        before_us = round(server_time_s(self.client) * 1e6)
        moved = 0
        with mapped_errors(self._shown):
            while batch := self.scripts.requeue_dead(
                self.band_us, [], limit=BATCH, before_us=before_us
            ):
                moved += len(batch)
        return moved

    def purge(self) -> int:
        """Delete every dead letter and its record; returns how many."""
        purged = 0
        with mapped_errors(self._shown):
            while n := self.scripts.purge_dead(BATCH):
                purged += n
        return purged
