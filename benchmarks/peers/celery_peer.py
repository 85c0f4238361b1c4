"""Celery peer: tasks sent with ``Task.delay`` on the Redis broker, run by ``celery worker``.

Concurrency is one worker with a prefork pool of ``workers`` child processes. There is no
result backend; instead ``task_acks_late`` keeps each message in kombu's ``unacked`` hash
until its task is done, so the jobs are finished when the queue list and that hash are both
empty. That costs no round trip per job beyond Celery's own (it acks every message either
way). kombu moves a message from the list (BRPOP) to the hash in a second round trip, so an
empty reading is only accepted when the next poll, 5 ms later, is empty too; the first
empty reading's time counts.
"""

from __future__ import annotations

import sys
import time

from benchmarks.peers import _common as common

NAME = "Celery"
NOTE = (
    "celery worker --pool prefork -c N -O fair --without-gossip/mingle/heartbeat, no result "
    "backend, acks_late (done = queue and unacked hash empty); retry_once: countdown 0"
)

TASKS = "benchmarks.peers._celery_tasks"


def available() -> bool:
    """True when celery (with the redis client kombu needs) imports."""
    return common.library_installed("celery", "redis")


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op tasks, one ``Task.delay`` call each; return jobs/s."""
    from benchmarks.peers._celery_tasks import make_app

    app = make_app(url)
    try:
        return common.calls_per_second(n, app.tasks["bench.noop"].delay)
    finally:
        app.close()


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Drain n jobs with one prefork ``celery worker`` of ``workers`` children; return jobs/s."""
    import redis

    from benchmarks.peers._celery_tasks import QUEUE, URL_ENV, make_app

    if scenario not in ("noop", "retry_once"):
        return None
    app = make_app(url)
    try:
        app.tasks["bench.marker"].delay()
        job = app.tasks["bench.noop" if scenario == "noop" else "bench.fail_once"]
        for _ in range(n):
            job.delay()
    finally:
        app.close()
    cmd = [sys.executable, "-m", "celery", "-A", TASKS, "--quiet", "worker", "--pool", "prefork"]
    cmd += ["-c", str(workers), "-O", "fair", "--loglevel", "WARNING"]
    cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    env = common.worker_env(URL_ENV, url)
    with redis.Redis.from_url(url) as client:
        empty_at: list[float] = []  # time.time() of the consecutive empty readings

        def drained() -> bool:
            """The queue list and the unacked hash have read empty twice in a row."""
            with client.pipeline(transaction=False) as pipe:
                queued, unacked, started = (
                    pipe.llen(QUEUE).hlen("unacked").exists("bench:t0").execute()
                )
            if started and queued == 0 and unacked == 0:
                empty_at.append(time.time())
            else:
                empty_at.clear()
            return len(empty_at) >= 2

        with common.running_workers(cmd, env, own_group=True, name="celery worker") as check:
            common.poll_until(drained, 60 + n / 50, check=check)
        return common.rate(n, client.get("bench:t0"), empty_at[0])
