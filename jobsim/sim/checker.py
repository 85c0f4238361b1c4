"""The checker, after Jepsen's ``total-queue``: after a drain, was every submitted job
accounted for exactly once?

- ``lost``: submitted, but with no record, or not in a terminal status after the drain;
- ``cancelled``: submitted and cancelled (a terminal status, not a loss);
- ``unexpected``: in the completed set or the dead-letter queue without having been
  submitted in this run;
- ``misplaced``: in both terminal sets, or in one that disagrees with its status, or still
  queued, processing or retrying after the drain (``stranded``);
- ``duplicates``: jobs that certainly ran to the end more than once (a late result was
  fenced); ``redelivered``: jobs delivered again after a lost lease (possible duplicates).

``valid`` means nothing lost, nothing unexpected and nothing misplaced. Duplicates are
allowed under at-least-once delivery, and always reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from jobsim.models import JobStatus
from jobsim.queue import JobQueue


@dataclass(frozen=True)
class Verdict:
    """What the checker found."""

    submitted: int
    completed: int
    dead_lettered: int
    lost: int
    unexpected: int
    misplaced: int
    stranded: int
    duplicates: int
    redelivered: int
    lost_ids: tuple[str, ...] = ()
    cancelled: int = 0

    @property
    def valid(self) -> bool:
        """Nothing lost, nothing unexpected, every job in exactly one terminal place."""
        return self.lost == 0 and self.unexpected == 0 and self.misplaced == 0

    def as_dict(self) -> dict[str, object]:
        """The counts and the verdict, for a JSON summary."""
        out: dict[str, object] = asdict(self)
        out["lost_ids"] = list(self.lost_ids[:20])
        out["valid"] = self.valid
        return out


def check(queue: JobQueue, submitted: Sequence[str], *, ran_twice: Sequence[str] = ()) -> Verdict:
    """Check a drained queue against the ids submitted to it.

    Args:
        ran_twice: ids known to have run to the end more than once without a fenced result
            (an injected crash threw a finished result away); counted as duplicates.
    """
    ids = set(submitted)
    stranded = ids & (
        _all_ids(queue, JobStatus.QUEUED)
        | _all_ids(queue, JobStatus.PROCESSING)
        | _all_ids(queue, JobStatus.RETRYING)
    )
    completed = _all_ids(queue, JobStatus.COMPLETED)
    dead = _all_ids(queue, JobStatus.FAILED)
    records = {job.id: job for job in queue.get_many(sorted(ids))}
    ended = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
    lost = sorted(i for i in ids if i not in records or records[i].status not in ended)
    misplaced = (
        len(stranded)
        + len(completed & dead)
        + sum(
            1
            for i, job in records.items()
            if (job.status == JobStatus.COMPLETED) != (i in completed)
            or (job.status == JobStatus.FAILED) != (i in dead)
        )
    )
    return Verdict(
        submitted=len(ids),
        completed=len(completed & ids),
        dead_lettered=len(dead & ids),
        lost=len(lost),
        unexpected=len((completed | dead) - ids),
        misplaced=misplaced,
        stranded=len(stranded),
        duplicates=len(
            {i for i, job in records.items() if job.fenced > 0} | (set(ran_twice) & ids)
        ),
        redelivered=sum(1 for job in records.values() if job.redeliveries > 0),
        lost_ids=tuple(lost),
        cancelled=sum(1 for job in records.values() if job.status == JobStatus.CANCELLED),
    )


def _all_ids(queue: JobQueue, status: JobStatus) -> set[str]:
    out: set[str] = set()
    offset = 0
    while batch := queue.job_ids(status, limit=5000, offset=offset):
        out.update(batch)
        offset += len(batch)
    return out
