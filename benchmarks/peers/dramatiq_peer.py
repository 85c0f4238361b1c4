"""Dramatiq peer: messages sent with ``Actor.send`` on the Redis broker, run by ``dramatiq``.

Concurrency is one worker process with ``workers`` threads. Completion is read from the
broker's own state: Dramatiq keeps every enqueued message in a hash (``<queue>.msgs``, and
``<queue>.DQ.msgs`` for the delay queue) until it is acked, so the jobs are finished when
both hashes are empty. That costs no round trip per job beyond Dramatiq's own.
"""

from __future__ import annotations

import sys

from benchmarks.peers import _common as common

NAME = "Dramatiq"
NOTE = (
    "dramatiq --processes 1 --threads N (Redis broker); done = its message hashes empty; "
    "retry_once: max_retries=1, min_backoff=0 (via the delay queue, eta = now)"
)

TASKS = "benchmarks.peers._dramatiq_tasks"


def available() -> bool:
    """True when dramatiq (with its Redis broker) imports."""
    return common.library_installed("dramatiq.brokers.redis")


def enqueue(url: str, n: int) -> float:
    """Enqueue n no-op messages, one ``Actor.send`` call each; return jobs/s."""
    from benchmarks.peers._dramatiq_tasks import connect

    broker, actors = connect(url)
    try:
        broker.client.ping()
        return common.calls_per_second(n, actors["noop"].send)
    finally:
        broker.client.connection_pool.disconnect()


def drain(url: str, n: int, workers: int, scenario: str) -> float | None:
    """Drain n jobs with one ``dramatiq`` process of ``workers`` threads; return jobs/s."""
    from benchmarks.peers._dramatiq_tasks import QUEUE, URL_ENV, connect

    if scenario not in ("noop", "retry_once"):
        return None
    broker, actors = connect(url)
    client = broker.client
    try:
        actors["marker"].send()
        job = actors["noop" if scenario == "noop" else "fail_once"]
        for _ in range(n):
            job.send()
        cmd = [sys.executable, "-m", "dramatiq", TASKS, "--processes", "1"]
        cmd += ["--threads", str(workers)]
        keys = [f"dramatiq:{QUEUE}.msgs", f"dramatiq:{QUEUE}.DQ.msgs", f"dramatiq:{QUEUE}.XQ.msgs"]
        env = common.worker_env(URL_ENV, url)
        with common.running_workers(cmd, env, own_group=True, name="dramatiq") as check:

            def drained() -> bool:
                """The queue and delay-queue hashes are empty (after the marker has run)."""
                with client.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.hlen(key)
                    pipe.exists("bench:t0")
                    queued, delayed, dead, started = pipe.execute()
                if started and queued == 0 and delayed == 0:
                    return True
                if dead:
                    check("dramatiq jobs failed")
                return False

            t_done = common.poll_until(drained, 60 + n / 50, check=check)
        t0 = client.get("bench:t0")
    finally:
        client.connection_pool.disconnect()
    return common.rate(n, t0, t_done)
