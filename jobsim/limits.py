"""Per-task rate and concurrency limits, as value objects, and the table Redis keeps of them.

A :class:`RateLimit` is a token bucket: ``burst`` jobs of the task may start at once, then
``per_s`` a second. A concurrency limit caps how many of a task's jobs hold a lease at
once. Both are set on the queue's settings and enforced by the Redis scripts for every
worker of the queue, on every host::

    config = jobsim.QueueConfig(
        rate_limits={"resize": jobsim.RateLimit(per_s=100, burst=10)},
        concurrency_limits={"resize": 3},
    )

Why the limits live in Redis, not in each call's ARGV: a limit only means something if
every worker obeys the same one. If each worker passed its own settings with each call, a
worker started without them (an old deployment, ``jobsim worker`` without the flags, a
notebook's pool) would lease the task freely, and two workers with different numbers would
each apply their own to one shared bucket. So a :class:`jobsim.JobQueue` whose settings name
limits writes them to the queue's ``limits`` hash when it is created (one script, replacing
the whole table atomically), and the scripts read that hash: every worker agrees with the
last queue configured, whatever it was started with. A queue whose settings name no limits
(``None``, the default) leaves the table alone; ``rate_limits={}`` clears it.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobsim.errors import InvalidInputError


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """A token bucket for one task: ``burst`` jobs may start at once, then ``per_s`` a second.

    A job takes one token when it is leased; tokens come back at ``per_s`` a second, up to
    ``burst``. So in any stretch of time ``t`` seconds long at most ``burst + per_s * t``
    jobs of the task are leased, by all workers together.

    Example:
        >>> RateLimit(per_s=100, burst=10).interval_s
        0.01

    Args:
        per_s: tokens per second (> 0, finite; fractions allowed: 0.5 is one every 2 s).
        burst: the bucket's size, and its content when the task was idle (an integer >= 1).

    Raises:
        InvalidInputError: a rate that is not a finite number > 0, or a burst < 1.
    """

    per_s: float
    burst: int = 1

    def __post_init__(self) -> None:
        rate = self.per_s
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not -1e300 < rate < 1e300  # before isfinite, which overflows on a huge int
            or not math.isfinite(rate)
        ):
            raise InvalidInputError(
                "per_s must be a finite number", field="per_s", value=reprlib.repr(rate)
            )
        if not rate > 0:
            raise InvalidInputError("per_s must be > 0", field="per_s", value=rate)
        burst = self.burst
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise InvalidInputError("burst must be an integer >= 1", field="burst", value=burst)

    @property
    def interval_s(self) -> float:
        """Seconds between tokens."""
        return 1.0 / self.per_s


@dataclass(frozen=True, kw_only=True)
class TaskLimits:
    """Everything that limits one task: its rate, its concurrency, either or both.

    Args:
        rate: the task's token bucket, or ``None``.
        max_running: most of its jobs leased at once, or ``None``.
    """

    rate: RateLimit | None = None
    max_running: int | None = None

    def encoded(self) -> tuple[str, str, str]:
        """``per_s burst max_running`` as the scripts read them (``0`` = no such limit)."""
        rate = self.rate
        return (
            repr(float(rate.per_s)) if rate else "0",
            str(rate.burst) if rate else "0",
            str(self.max_running or 0),
        )

    @classmethod
    def decoded(cls, text: str) -> TaskLimits:
        """The inverse of :meth:`encoded`, joined by spaces as the ``limits`` hash keeps it."""
        per_s, burst, cap = text.split()
        rate = RateLimit(per_s=float(per_s), burst=int(burst)) if float(per_s) > 0 else None
        return cls(rate=rate, max_running=int(cap) or None)


def checked_rates(value: object) -> dict[str, RateLimit] | None:
    """``QueueConfig.rate_limits``, checked and copied."""
    if value is None:
        return None
    table = _mapping(value, "rate_limits")
    for task, limit in table.items():
        if not isinstance(limit, RateLimit):
            raise InvalidInputError(
                f"rate_limits[{task!r}] must be a jobsim.RateLimit",
                field="rate_limits",
                value=limit,
            )
    return table


def checked_caps(value: object) -> dict[str, int] | None:
    """``QueueConfig.concurrency_limits``, checked and copied."""
    if value is None:
        return None
    table = _mapping(value, "concurrency_limits")
    for task, cap in table.items():
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise InvalidInputError(
                f"concurrency_limits[{task!r}] must be an integer >= 1",
                field="concurrency_limits",
                value=cap,
            )
    return table


def _mapping(value: object, name: str) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"{name} must be a mapping of task name to limit", field=name, value=value
        )
    for task in value:
        if not isinstance(task, str) or not task or task != task.strip() or len(task) > 200:
            raise InvalidInputError(
                f"{name} keys must be task names (1-200 characters, no surrounding space)",
                field=name,
                value=task,
            )
    return dict(value)


def limit_table(
    rates: Mapping[str, RateLimit] | None, caps: Mapping[str, int] | None
) -> dict[str, TaskLimits]:
    """Both mappings joined into one entry per limited task."""
    rates, caps = rates or {}, caps or {}
    return {
        task: TaskLimits(rate=rates.get(task), max_running=caps.get(task))
        for task in sorted(set(rates) | set(caps))
    }
