"""Tasks for the Celery peer; imported by ``celery -A benchmarks.peers._celery_tasks worker``
(PYTHONPATH=repo root).

Importing this module builds the Celery app ``app`` for the broker URL in the environment
variable named by ``URL_ENV``; the benchmarking process calls :func:`make_app` for an app of
its own. There is no result backend. ``task_acks_late`` is on, so a message stays in kombu's
``unacked`` hash until its task has finished (or has been re-sent for a retry).
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery, Task

URL_ENV = "BENCH_REDIS_URL"
QUEUE = "celery"


def make_app(url: str) -> Celery:
    """A Celery app on the Redis broker at ``url`` with the tasks ``bench.marker``,
    ``bench.noop`` and ``bench.fail_once`` registered.

    ``fail_once`` is retried once by ``autoretry_for`` with ``default_retry_delay=0``: a
    countdown of 0 sends the retry message at once, with no eta.
    """
    app = Celery("bench", broker=url)
    app.conf.update(
        task_acks_late=True,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="bench.marker")
    def marker() -> None:
        """Record when the worker began: time.time() in the key ``bench:t0``."""
        with redis.Redis.from_url(url) as client:
            client.set("bench:t0", repr(time.time()))

    @app.task(name="bench.noop")
    def noop() -> None:
        """Do nothing."""

    @app.task(
        name="bench.fail_once",
        bind=True,
        autoretry_for=(RuntimeError,),
        max_retries=1,
        default_retry_delay=0,
    )
    def fail_once(task: Task) -> None:
        """Fail on the first attempt, succeed on the retry."""
        if not task.request.retries:
            raise RuntimeError("first attempt fails by design")

    return app


app = make_app(os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"))
