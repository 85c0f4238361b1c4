"""What the twin/real-queue conformance tests share: the burst workloads they run and what
must agree exactly between the engines."""

from __future__ import annotations

from typing import Any

from jobsim.sim import Fixed, Replay, RunResult, Workload


def bursts(*times: float) -> Workload:
    """Jobs at ``times`` (model s), 1 s of work each, two attempts, priorities 9, 0, 5, 9, 0
    (seed 0): the first job has the top priority, so it is served first even when a loaded
    machine submits it in one batch with the next."""
    return Workload(jobs=len(times), arrival=Replay(times_s=times), service=Fixed(seconds=1.0),
                    priorities={0: 1, 5: 1, 9: 1}, max_retries=1, time_scale=0.3,
                    seed=0)  # fmt: skip


def observed(result: RunResult) -> dict[str, Any]:
    """What must agree exactly: the service order with each attempt's outcome, attempts per
    job, dead letters, fenced results per job, and the checker's duplicates, redeliveries
    and losses."""
    a = result.attempts.sort_values("started", kind="stable")
    v = result.verdict
    return {
        "order": list(zip(a.job_id, a.number.astype(int), a.outcome, strict=True)),
        "attempts": dict(zip(result.jobs.job_id, result.jobs.attempts.astype(int), strict=True)),
        "dead": sorted(result.jobs.loc[result.jobs.outcome == "failed", "job_id"]),
        "fenced": dict(zip(result.jobs.job_id, result.jobs.fenced.astype(int), strict=True)),
        "checker": (v.duplicates, v.redelivered, v.lost, v.valid),
    }
