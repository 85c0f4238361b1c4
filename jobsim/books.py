"""A worker's lease books, and taking a worker's leases back from them.

A worker keeps exact books of what it holds — leased but not started, running, finished
but not settled — so whoever takes its leases back (the supervisor of a hung thread or of a
stopping pool, or the parent of a dead worker process) can settle what finished, put the
unstarted back without counting an attempt, and count an attempt only for the job that
ran. Every call quotes the lease tokens, so taking back twice changes nothing the second
time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from jobsim.leases import Leases
from jobsim.scripts import Ack, Dequeued, GiveBack, Nack

log = logging.getLogger("jobsim.books")


@dataclass
class Running:
    """The job a worker is running, when it times out (``time.monotonic()``), and, once its
    cancel was requested, the event its task sees and when its lease is taken back."""

    job: Dequeued
    deadline: float | None
    timeout_s: float | None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    cancel_deadline: float | None = None

    def next_deadline(self) -> float | None:
        """The earlier of the timeout and the cancel deadline."""
        times = [t for t in (self.deadline, self.cancel_deadline) if t]
        return min(times) if times else None


@dataclass
class Holdings:
    """The leases of a worker that someone else must settle or give back."""

    done: list[Ack] = field(default_factory=list)  # finished, result known
    failed: list[Nack] = field(default_factory=list)  # finished, failure known
    ran: list[tuple[str, int]] = field(default_factory=list)  # (id, token): taken, outcome lost
    running: Running | None = None
    unstarted: list[Dequeued] = field(default_factory=list)

    def known_tokens(self) -> set[tuple[str, int]]:
        """Every ``(job id, token)`` these books account for."""
        known = {(a.id, a.token) for a in self.done} | {(n.id, n.token) for n in self.failed}
        known |= set(self.ran) | {(j.id, j.token) for j in self.unstarted}
        if self.running is not None:
            known.add((self.running.job.id, self.running.job.token))
        return known


def timeout_failure(running: Running, what: str, backoff_us: int) -> Nack:
    """The failure recorded for a job that ran past its timeout."""
    error = f"TimeoutError: job ran longer than {running.timeout_s:g} s; {what}"
    return Nack(running.job.id, running.job.token, error, True, backoff_us, "timeout")


def take_back(
    leases: Leases,
    worker_id: str,
    holdings: Holdings,
    *,
    outcome: str,
    error: str,
    catch_all: bool = False,
    backoff_us: Callable[[Dequeued], int] = lambda job: 0,
) -> None:
    """Settle a worker's finished jobs, put its unstarted ones back uncounted, and give back
    (or, for ``outcome="timeout"``, fail with a retry after ``backoff_us(job)``) the one it
    was running. ``catch_all`` also gives back any lease the books missed, for a worker that
    is gone. If Redis cannot be reached, the leases expire and are redelivered instead.
    """
    try:
        if holdings.done or holdings.failed:
            leases.exchange(worker_id, 0, holdings.done, holdings.failed)
        leases.unlease(holdings.unstarted)
        given = [GiveBack(job_id, token, outcome, error) for job_id, token in holdings.ran]
        running = holdings.running
        if running is not None and outcome == "timeout":
            leases.fail([timeout_failure(running, error, backoff_us(running.job))])
        elif running is not None:
            given.append(GiveBack(running.job.id, running.job.token, outcome, error))
        leases.release(given)
        if catch_all:
            leases.release_worker(worker_id, outcome, error)
    except redis.RedisError as exc:
        log.warning("could not take back %s's leases (they will expire): %s", worker_id, exc)
