"""Periodic jobs: a schedule (every N seconds, or a cron expression) and the ticks it is due.

A schedule is declared in the queue's settings, ``QueueConfig(periodic=[...])``, so every
worker pool of the queue knows it; each pool runs a light scheduler thread
(:mod:`jobsim.scheduler`), and all of them race. Each tick is submitted **exactly once**
however many race: the queue keeps each schedule's last submitted tick in Redis
(``Keys.periodic``), and one script (PERIODIC) advances it compare-and-set and inserts that
tick's job, whose id is ``periodic:<name>:<tick epoch seconds>``, in the same atomic step.

Ticks are epoch seconds of Redis time: ``every_s`` ticks at the multiples of ``every_s``
since the epoch; ``cron`` (five fields, or six with seconds first; parsed by cronsim) ticks
in UTC. A schedule first seen starts at its next tick (no job for a tick before it existed).
Missed ticks (no pool ran, or all were stopped) are handled as ``missed`` says:

- ``"skip"`` (the default): only the latest missed tick is submitted;
- ``"catch_up"``: every missed tick is submitted, oldest first, at most
  :data:`MAX_CATCH_UP` (older ones are dropped and counted as ``periodic_skipped``).

Example:
    >>> Periodic("nightly", "noop", cron="0 3 * * *", missed="catch_up").ticks_after(0, 86_400 * 2)
    [10800, 97200]
    >>> Periodic("nightly", "noop", cron="0 3 * * *").ticks_after(0, 86_400 * 2)
    [97200]
    >>> Periodic("beat", "noop", every_s=60, missed="skip").ticks_after(0, 300)
    [300]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from cronsim import CronSim, CronSimError

from jobsim.errors import InvalidInputError

MAX_CATCH_UP = 100
"""Most missed ticks one schedule catches up on at once."""
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

Missed = Literal["skip", "catch_up"]


@dataclass(frozen=True)
class Periodic:
    """A job submitted every ``every_s`` seconds or on a cron schedule.

    Example:
        >>> Periodic("report", "noop", {"kind": "daily"}, cron="*/5 * * * *").job_id(300)
        'periodic:report:300'

    Args:
        name: names the schedule (letters, digits, ``_.-``); part of each tick's job id.
        task: the task each tick runs.
        payload: its JSON payload, the same every tick.
        every_s: seconds between ticks (a whole number >= 1), or
        cron: a cron expression, in UTC (one of the two).
        missed: ``"skip"`` or ``"catch_up"`` (see the module's docstring).
        priority: the jobs' priority.
        max_retries: the jobs' retries (default: the queue's).

    Raises:
        InvalidInputError: a bad name, neither or both of ``every_s`` and ``cron``, an
            interval that is not a whole number >= 1, a cron expression that does not parse,
            or an unknown ``missed``.
    """

    name: str
    task: str
    payload: Any = None
    every_s: float | None = None
    cron: str | None = None
    missed: Missed = "skip"
    priority: int = 0
    max_retries: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise InvalidInputError(
                "periodic name must be 1-64 letters, digits, _ . -", field="name", value=self.name
            )
        if (self.every_s is None) == (self.cron is None):
            raise InvalidInputError(
                "give a periodic job every_s or cron (one of the two)",
                field="every_s",
                value=self.every_s,
            )
        every = self.every_s
        if every is not None and (
            isinstance(every, bool)
            or not isinstance(every, int | float)
            or not math.isfinite(every)
            or every < 1
            or every != int(every)
        ):
            raise InvalidInputError(
                "every_s must be a whole number of seconds >= 1", field="every_s", value=every
            )
        if self.cron is not None:
            try:
                CronSim(self.cron, datetime.fromtimestamp(0, timezone.utc))
            except (CronSimError, TypeError, ValueError) as exc:
                raise InvalidInputError(
                    f"cron {self.cron!r} does not parse: {exc}", field="cron", value=self.cron
                ) from None
        if self.missed not in ("skip", "catch_up"):
            raise InvalidInputError(
                "missed must be 'skip' or 'catch_up'", field="missed", value=self.missed
            )

    def job_id(self, tick: int) -> str:
        """The id of the job of ``tick`` (epoch seconds)."""
        return f"periodic:{self.name}:{tick}"

    def latest_tick(self, now_s: float) -> int:
        """The last tick at or before ``now_s`` (where a new schedule starts counting)."""
        if self.every_s is not None:
            every = int(self.every_s)
            return int(now_s // every) * every
        tick: int = next(self._back_from(now_s))
        return tick

    def ticks_after(self, last: int, now_s: float) -> list[int]:
        """The ticks due after tick ``last`` up to ``now_s``, as ``missed`` says: the latest
        only (skip), or all, oldest first, at most :data:`MAX_CATCH_UP` (catch up)."""
        due = self._all_after(last, now_s, limit=MAX_CATCH_UP)
        return due[-1:] if self.missed == "skip" else due

    def _all_after(self, last: int, now_s: float, *, limit: int) -> list[int]:
        """The newest ``limit`` ticks in ``(last, now_s]``, oldest first (bounded work however
        long the gap: cron ticks are walked back from now)."""
        if self.every_s is not None:
            every = int(self.every_s)
            first = (last // every + 1) * every
            newest = int(now_s // every) * every
            first = max(first, newest - (limit - 1) * every)
            return list(range(first, newest + 1, every)) if newest >= first else []
        ticks: list[int] = []
        for tick in self._back_from(now_s):
            if tick <= last or len(ticks) == limit:
                break
            ticks.append(tick)
        return ticks[::-1]

    def _back_from(self, now_s: float) -> Iterator[int]:
        """Cron ticks at or before ``now_s``, newest first."""
        start = datetime.fromtimestamp(int(now_s) + 1, timezone.utc)
        return (int(t.timestamp()) for t in CronSim(self.cron or "", start, reverse=True))

    def skipped(self, last: int, now_s: float) -> int:
        """How many due ticks :meth:`ticks_after` leaves out (counted, never silent; for cron
        counted up to ``10 * MAX_CATCH_UP``)."""
        if self.every_s is not None:
            every = int(self.every_s)
            total = max(0, int(now_s // every) - last // every)
        else:
            total = len(self._all_after(last, now_s, limit=10 * MAX_CATCH_UP))
        return total - len(self.ticks_after(last, now_s))
