"""Reading a queue: one job's record, the ids in each status in the order that status keeps
them, counts per status, and the limits in force. Nothing here writes;
:class:`jobsim.JobQueue` offers these as its own methods."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis

from jobsim.clusters import mapped_errors
from jobsim.connection import shown_url
from jobsim.errors import InvalidInputError, JobNotFoundError
from jobsim.keys import Keys
from jobsim.limits import TaskLimits
from jobsim.models import Job, JobStatus, QueueStats
from jobsim.requests import possible_id, preview
from jobsim.scripts import Scripts

CHUNK = 1000
"""Records one pipeline of :meth:`Inspector.get_many` reads."""
_MAX_INDEX = 2**63 - 1  # largest index Redis' ZRANGE takes


class Inspector:
    """The read-only calls of one queue.

    Args:
        client: the queue's Redis client.
        keys: the queue's key names.
        scripts: the queue's scripts on that client (listing queued jobs is one).
    """

    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts) -> None:
        self.client = client
        self.keys = keys
        self.scripts = scripts
        self._shown = shown_url(client)  # for errors: password masked

    def status(self, job_id: str) -> Job:
        """The job's record.

        Raises:
            JobNotFoundError: no such job (never submitted, purged, or dropped by retention).
            InvalidInputError: ``job_id`` is not a string.
        """
        fields: dict[str, str] = {}
        if possible_id(job_id):
            with mapped_errors(self._shown):
                fields = cast(dict[str, str], self.client.hgetall(self.keys.job(job_id)))
        if not fields:
            raise JobNotFoundError(job_id)
        return Job.from_hash(job_id, fields)

    def job_ids(self, status: JobStatus | str, *, limit: int = 100, offset: int = 0) -> list[str]:
        """Ids of jobs in ``status``, in the order that status keeps them.

        ``queued`` lists them in service order, those a rate or concurrency limit holds back
        included (``stats().throttled`` counts these); ``processing`` by lease
        deadline; ``scheduled`` and ``retrying`` by due time; ``completed``, ``failed`` and
        ``cancelled`` by finish time, oldest first.

        Args:
            status: a :class:`JobStatus` or its value.
            limit: at most this many ids; ``0`` lists none.
            offset: skip this many first; past the end lists none.

        Raises:
            InvalidInputError: an unknown status, or a limit or offset that is not an
                integer >= 0.
        """
        try:
            key = self._status_key(JobStatus(status))
        except ValueError:
            names = ", ".join(s.value for s in JobStatus)
            raise InvalidInputError(
                f"unknown status {preview(status)}; use one of {names}",
                field="status",
                value=status,
            ) from None
        for name, value in (("limit", limit), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be an integer >= 0", field=name, value=value)
        if limit == 0 or offset > _MAX_INDEX:  # zrange(k, 0, -1) would list everything
            return []
        stop = min(offset + limit - 1, _MAX_INDEX)  # Redis indexes are 64-bit
        with mapped_errors(self._shown):
            if JobStatus(status) is JobStatus.QUEUED:  # with the jobs a limit holds back
                return self.scripts.list_queued(offset, stop)
            return cast(list[str], self.client.zrange(key, offset, stop))

    def stats(self) -> QueueStats:
        """Counts per status now, running totals, and whether the queue is paused.

        ``queued`` counts the jobs a rate or concurrency limit holds back too; ``throttled``
        says how many of them those are.
        """
        pipe = self.client.pipeline(transaction=True)  # one slot: a transaction on a cluster too
        for status in JobStatus:
            pipe.zcard(self._status_key(status))
        pipe.hgetall(self.keys.counters)
        pipe.exists(self.keys.paused)
        pipe.hget(self.keys.limiter, "parked")
        with mapped_errors(self._shown):
            *counts, totals, paused, parked = pipe.execute()
        by_status = dict(zip((s.value for s in JobStatus), counts, strict=True))
        totals = {k: int(v) for k, v in totals.items()}
        throttled = int(parked or 0)
        by_status["queued"] += throttled
        return QueueStats(**by_status, totals=totals, paused=bool(paused), throttled=throttled)

    def limits(self) -> dict[str, TaskLimits]:
        """The rate and concurrency limits every worker of this queue obeys now, as Redis
        holds them (written by the last queue whose settings named limits)."""
        raw = cast(dict[str, str], self.client.hgetall(self.keys.limits))
        return {task: TaskLimits.decoded(text) for task, text in sorted(raw.items())}

    def running(self, task: str) -> int:
        """How many of ``task``'s jobs hold a concurrency slot now (0 if it has no limit)."""
        return int(self.client.hget(self.keys.limiter, f"r:{task}") or 0)

    def _status_key(self, status: JobStatus) -> str:
        return self.keys.of_status(status.value)

    def get_many(self, ids: Sequence[str]) -> list[Job]:
        """The records of ``ids`` that exist, in the order given, a thousand per round trip.

        Example:
            >>> queue.get_many(queue.job_ids("failed"))                # doctest: +SKIP
        """
        jobs: list[Job] = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            pipe = self.client.pipeline(transaction=False)
            for job_id in chunk:
                pipe.hgetall(self.keys.job(job_id))
            with mapped_errors(self._shown):
                found = pipe.execute()
            jobs += [Job.from_hash(i, f) for i, f in zip(chunk, found, strict=True) if f]
        return jobs
