"""``jobsim demo``: a mixed workload on the embedded backend, explained as it runs.

Until the simulator lands this is the main job: flaky jobs with retries and full-jitter
backoff, urgent jobs at a high priority, jobs that fail permanently, one job whose first
attempt crashes its worker; then counts beside the retry formulas, and the dead letters.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from jobsim.connection import connect
from jobsim.models import JobStatus
from jobsim.pool import WorkerPool
from jobsim.queue import JobQueue, JobRequest, Lease, QueueConfig
from jobsim.retry import RetryPolicy


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the process exit code (0 when no job was lost)."""
    p, r, n = args.fail_probability, args.max_retries, args.jobs
    config = QueueConfig(
        retry=RetryPolicy(kind="full", base_s=0.01, cap_s=0.2),
        lease=Lease(duration_s=1.0),
    )
    queue = JobQueue(connect(args.redis), f"demo-{uuid.uuid4().hex[:6]}", config)
    flaky = [
        JobRequest(
            "flaky",
            {"fail_probability": p, "seconds": 0.002, "seed": args.seed},
            priority=i % 3,
            max_retries=r,
        )
        for i in range(n)
    ]
    urgent = [JobRequest("sleep", {"seconds": 0.005}, priority=9) for _ in range(max(1, n // 10))]
    doomed = [JobRequest("fail", {"permanent": True}, max_retries=r) for _ in range(3)]
    crash = [JobRequest("crash", {"times": 1}, priority=5, max_retries=r)]
    started = time.monotonic()
    flaky_ids = queue.submit_many(flaky)
    urgent_ids = queue.submit_many(urgent)
    queue.submit_many(doomed + crash)
    total = len(flaky) + len(urgent) + len(doomed) + len(crash)
    print(
        f"submitted {total} jobs to queue {queue.name!r}: {len(flaky)} flaky (p={p}, "
        f"max_retries={r}), {len(urgent)} urgent (priority 9), {len(doomed)} that fail "
        f"permanently, 1 that crashes its worker once"
    )
    with WorkerPool(queue, concurrency=args.workers, seed=args.seed):
        _progress(queue, total)
    elapsed = time.monotonic() - started
    stats = queue.stats()
    _summary(queue, flaky_ids, urgent_ids, p, r, elapsed)
    lost = total - stats.completed - stats.failed
    print(
        f"\nlost jobs: {lost}  (completed {stats.completed} + failed {stats.failed} "
        f"== submitted {total})"
    )
    queue.delete()
    return 0 if lost == 0 else 1


def _progress(queue: JobQueue, total: int) -> None:
    width = 30
    while True:
        stats = queue.stats()
        done = stats.completed + stats.failed
        bar = "#" * (width * done // total)
        sys.stderr.write(
            f"\r[{bar:<{width}}] {done}/{total} done  queued {stats.queued:>4}  "
            f"processing {stats.processing}  retrying {stats.retrying:>3}  "
            f"dead {stats.failed:>3}"
        )
        sys.stderr.flush()
        if stats.active == 0:
            sys.stderr.write("\n")
            return
        time.sleep(0.1)


def _summary(
    queue: JobQueue, flaky_ids: list[str], urgent_ids: list[str], p: float, r: int, elapsed: float
) -> None:
    flaky = _fetch(queue, flaky_ids)
    urgent = _fetch(queue, urgent_ids)
    attempts = sum(j.attempts for j in flaky) / len(flaky)
    dead = sum(j.status == JobStatus.FAILED for j in flaky) / len(flaky)
    expected_attempts = (1 - p ** (r + 1)) / (1 - p) if p < 1 else r + 1
    band = 4 * (p ** (r + 1) * (1 - p ** (r + 1)) / len(flaky)) ** 0.5
    print(f"\nfinished in {elapsed:.2f} s\n")
    print(f"{'flaky jobs':<28}{'measured':>10}{'theory':>10}")
    print(
        f"{'attempts per job':<28}{attempts:>10.3f}{expected_attempts:>10.3f}"
        "   E[A] = (1 - p^(r+1)) / (1 - p)"
    )
    print(
        f"{'dead-letter rate':<28}{dead:>10.4f}{p ** (r + 1):>10.4f}"
        f"   p^(r+1), binomial band +/- {band:.4f}"
    )
    wait_urgent = _mean_wait(urgent)
    wait_flaky = _mean_wait(flaky)
    print(
        f"\nmean wait before first attempt: priority 9 {wait_urgent * 1e3:.1f} ms, "
        f"priorities 0-2 {wait_flaky * 1e3:.1f} ms"
    )
    letters = queue.dead_letters(limit=5)
    print(f"\ndead-letter queue ({queue.stats().failed} jobs), first {len(letters)}:")
    for job in letters:
        outcomes = " -> ".join(a.outcome.value for a in job.attempt_log)
        print(f"  {job.id[:8]} {job.task:<6} {outcomes:<28} last error: {job.last_error}")
    crashed = [j for j in queue.jobs(JobStatus.COMPLETED, limit=10_000) if j.task == "crash"]
    for job in crashed:
        first = job.attempt_log[0]
        print(
            f"\ncrash job {job.id[:8]}: attempt 1 {first.outcome.value} ({first.error}); "
            f"redelivered {job.redeliveries}x, ended {job.status.value} on attempt {job.attempts}"
        )


def _fetch(queue: JobQueue, ids: list[str]) -> list:  # type: ignore[type-arg]
    return queue._fetch(ids)


def _mean_wait(jobs: list) -> float:  # type: ignore[type-arg]
    waits = [j.attempt_log[0].started_at - j.submitted_at for j in jobs if j.attempt_log]
    return sum(waits) / len(waits) if waits else float("nan")
