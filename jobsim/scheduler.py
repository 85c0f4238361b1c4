"""The scheduler of periodic jobs: submits each schedule's due ticks, exactly once per tick
however many schedulers race (see :mod:`jobsim.periodic` for the rules).

Every :class:`jobsim.WorkerPool` of a queue whose config has ``periodic`` schedules runs a
:class:`SchedulerThread`; they all race, and the PERIODIC script's compare-and-set on each
schedule's last tick lets exactly one of them submit each tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, cast

import redis

from jobsim.connection import server_time_s
from jobsim.errors import JobsimError
from jobsim.periodic import Periodic
from jobsim.queue import JobQueue
from jobsim.requests import JobRequest, validated
from jobsim.scripts import Scripts

log = logging.getLogger("jobsim.periodic")

POLL_S = 0.2
"""How often a scheduler thread looks for due ticks: a tick is submitted within about this
long of its time (plus the time Redis takes)."""


class PeriodicScheduler:
    """Submits the due ticks of a queue's schedules (by default its config's ``periodic``).

    Example:
        >>> scheduler = PeriodicScheduler(queue)                    # doctest: +SKIP
        >>> scheduler.tick()          # jobs this call submitted     # doctest: +SKIP
        1
    """

    def __init__(self, queue: JobQueue, schedules: Sequence[Periodic] | None = None) -> None:
        self.queue = queue
        self.schedules = tuple(queue.config.periodic if schedules is None else schedules)
        self._scripts = Scripts(queue.client, queue.keys)

    def tick(self, now_s: float | None = None) -> int:
        """One round over every schedule: submit the ticks due by ``now_s`` (default: Redis
        time now) that no scheduler has submitted yet.

        Returns:
            How many jobs this call submitted (0 when another scheduler got there first).

        Raises:
            InvalidInputError: a schedule's job is rejected (unknown task, bad payload);
                nothing of that schedule is written.
        """
        if not self.schedules:
            return 0
        now = server_time_s(self.queue.client) if now_s is None else now_s
        names = [s.name for s in self.schedules]
        lasts = cast(list[Any], self.queue.client.hmget(self.queue.keys.periodic, names))
        return sum(
            self._advance(s, last, now) for s, last in zip(self.schedules, lasts, strict=True)
        )

    def _advance(self, schedule: Periodic, last: str | None, now: float) -> int:
        band = self.queue.config.band_us
        if last is None:  # a new schedule starts at its next tick
            start = schedule.latest_tick(now)
            return max(0, self._scripts.periodic(band, schedule.name, "", start, 0, []))
        ticks = schedule.ticks_after(int(last), now)
        if not ticks:
            return 0
        flat: list[Any] = []
        for tick in ticks:
            request = JobRequest(
                schedule.task,
                schedule.payload,
                schedule.priority,
                schedule.max_retries,
                schedule.job_id(tick),
            )
            validated(request, self.queue.config, self.queue.registry, flat)
        skipped = schedule.skipped(int(last), now)
        inserted = self._scripts.periodic(band, schedule.name, last, ticks[-1], skipped, flat)
        if inserted > 0:
            log.info(
                "periodic %s: submitted %d job(s) up to tick %d%s",
                schedule.name,
                inserted,
                ticks[-1],
                f", skipped {skipped} missed tick(s)" if skipped else "",
                extra={"periodic": schedule.name, "task": schedule.task},
            )
        return max(0, inserted)


class SchedulerThread(threading.Thread):
    """Runs a :class:`PeriodicScheduler` every :data:`POLL_S` until stopped; a Redis error or
    a rejected job is logged and tried again next round."""

    def __init__(self, queue: JobQueue, pool_id: str) -> None:
        super().__init__(name=f"jobsim-periodic-{pool_id}", daemon=True)
        self.scheduler = PeriodicScheduler(queue)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.scheduler.tick()
            except (redis.RedisError, JobsimError) as exc:
                log.warning("periodic scheduler: %s", exc)
            self._stop_event.wait(POLL_S)

    def stop(self) -> None:
        """Stop after the round under way."""
        self._stop_event.set()
        self.join(timeout=5.0)
