"""What an engine of the virtual backend records: every attempt, each job's end, samples."""

from __future__ import annotations

from dataclasses import dataclass, field

SAMPLES = 20_000
"""About how many (time, jobs in system) samples an engine takes of its own count."""

MAX_SAMPLES = 5 * SAMPLES
"""At this many samples an engine drops every other one and doubles its step (a run far
longer than its arrivals: long leases or backoffs)."""


@dataclass
class Trace:
    """One run's record, in model seconds.

    Attempts are in the order they started; ``outcome`` is None where it follows from
    ``error`` (None: completed) and whether the job was dead-lettered on that attempt.
    """

    job: list[int] = field(default_factory=list)
    number: list[int] = field(default_factory=list)
    worker: list[int] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)
    error: list[str | None] = field(default_factory=list)
    outcome: list[str] | None = None
    finished: list[float] = field(default_factory=list)
    dead: set[int] = field(default_factory=set)
    samples: list[tuple[float, int]] = field(default_factory=list)  # (model s, in system)
    submitted: list[float] | None = None  # when each job was submitted, if not its arrival
    redeliveries: list[int] | None = None
    fenced: list[int] | None = None
    discarded: set[int] = field(default_factory=set)  # ran to the end, result thrown away
    lost: set[int] = field(default_factory=set)  # state gone (a restart without persistence)
    cancelled: set[int] = field(default_factory=set)  # ended cancelled
    events: list[tuple[float, str, str]] = field(default_factory=list)  # faults as applied


def sample_period(last_arrival: float, total_service: float, workers: int) -> float:
    """The sampling grid's step: about the run's length over :data:`SAMPLES` (the later of
    the last arrival and the time the workers need for all the planned work)."""
    horizon = max(last_arrival, total_service / workers)
    return (horizon if horizon > 0 else 1.0) / SAMPLES
