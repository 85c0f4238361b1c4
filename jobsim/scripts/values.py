"""The values that cross the seam between the scripts and their callers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Dequeued:
    """A job handed to a worker with a lease.

    Args:
        id: the job id.
        attempt: the attempt number, 1 for the first delivery (over every allowance).
        token: the lease's fencing token: strictly increasing per job, never handed out
            twice; every call acting on this lease quotes it.
        task: the task name.
        payload: the payload as JSON text.
        previous_delay_s: the backoff before this attempt, if it was a retry.
        score: its place in the queue, to put it back there if it is never started.
        backoff_attempt: the attempt number within the current allowance (it restarts when a
            dead letter is requeued): what the retry policy counts.
    """

    id: str
    attempt: int
    token: int
    task: str = ""
    payload: str = "null"
    previous_delay_s: float | None = None
    score: str = "0"
    backoff_attempt: int = 1


@dataclass(frozen=True)
class Exchange:
    """What one DEQUEUE round trip returns."""

    jobs: list[Dequeued]
    next_due_s: float | None  # until the next due retry, scheduled job or lease deadline
    now_us: int  # Redis TIME when the jobs were leased
    fenced: list[str]  # ids whose settlement was refused (the lease was no longer held)


@dataclass(frozen=True)
class Ack:
    """A finished job's result, for the holder of lease ``token`` to send."""

    id: str
    token: int
    result: str = ""  # JSON text, '' for none
    started_us: str = ""  # '' = unknown
    ended_us: str = ""  # '' = now


@dataclass(frozen=True)
class Nack:
    """A failed attempt, for the holder of lease ``token`` to send."""

    id: str
    token: int
    error: str
    retryable: bool = True
    backoff_us: int = 0
    outcome: str = ""  # '' = retry or failed, as the attempts left decide
    started_us: str = ""
    ended_us: str = ""
    traceback: str = ""  # the failing stack trace ('' = none), at most TRACEBACK_CHARS


TRACEBACK_CHARS = 8192
"""Longest stack trace kept per attempt: its last 8,192 characters (the innermost frames,
where the error was raised), so a deep recursion cannot bloat the job record."""


@dataclass(frozen=True)
class Beat:
    """What one HEARTBEAT returns."""

    lost: list[str]  # ids whose lease the worker no longer holds
    cancelling: list[str]  # ids still held whose cancel was requested: stop them


GIVE_BACK_OUTCOMES = frozenset({"expired", "timeout", "crashed", "interrupted", "cancelled"})


@dataclass(frozen=True)
class GiveBack:
    """A lease whose holder will never settle it, and why."""

    id: str
    token: int
    outcome: str  # one of GIVE_BACK_OUTCOMES: it becomes the attempt's outcome and a counter
    error: str

    def __post_init__(self) -> None:
        if self.outcome not in GIVE_BACK_OUTCOMES:
            raise ValueError(f"a lease is given back as one of {sorted(GIVE_BACK_OUTCOMES)}")


ACK_ITEMS = ("id", "token", "result", "started_us", "ended_us")
NACK_ITEMS = (
    "id", "token", "error", "retryable", "backoff_us", "outcome", "started_us", "ended_us",
    "traceback",
)  # fmt: skip
GIVE_BACK_ITEMS = ("id", "token", "outcome", "error")
LEASED = (
    "id", "attempt", "token", "task", "payload", "delay_us", "score", "backoff_attempt",
)  # fmt: skip
"""What DEQUEUE returns for each leased job, in order."""


def parse_leased(flat: Sequence[str]) -> list[Dequeued]:
    """The jobs of a DEQUEUE reply (its first element: :data:`LEASED` fields per job)."""
    n = len(LEASED)
    return [
        _leased(dict(zip(LEASED, flat[i : i + n], strict=True))) for i in range(0, len(flat), n)
    ]


def _leased(entry: dict[str, str]) -> Dequeued:
    return Dequeued(
        id=entry["id"],
        attempt=int(entry["attempt"]),
        token=int(entry["token"]),
        task=entry["task"],
        payload=entry["payload"],
        previous_delay_s=int(entry["delay_us"]) / 1e6 if entry["delay_us"] else None,
        score=entry["score"],
        backoff_attempt=int(entry["backoff_attempt"]),
    )
