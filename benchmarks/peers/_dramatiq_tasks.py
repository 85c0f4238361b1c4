"""Actors for the Dramatiq peer; imported by ``dramatiq`` worker processes (PYTHONPATH=repo root).

Importing this module builds a :class:`RedisBroker` for the URL in the environment variable
named by ``URL_ENV``, declares the actors on it and makes it the global broker, which is what
``dramatiq benchmarks.peers._dramatiq_tasks`` runs. The benchmarking process calls
:func:`connect` for a broker and actors of its own.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

URL_ENV = "BENCH_REDIS_URL"
QUEUE = "default"


def marker() -> None:
    """Record when the worker began: time.time() in the key ``bench:t0``."""
    dramatiq.get_broker().client.set("bench:t0", repr(time.time()))  # type: ignore[attr-defined]


def noop() -> None:
    """Do nothing."""


def fail_once() -> None:
    """Fail on the first attempt, succeed on the retry (the Retries middleware counts them)."""
    message = CurrentMessage.get_current_message()
    if message is not None and not message.options.get("retries"):
        raise RuntimeError("first attempt fails by design")


def connect(url: str) -> tuple[RedisBroker, dict[str, dramatiq.Actor]]:
    """A Redis broker for ``url`` (with CurrentMessage added) and the actors declared on it.

    ``fail_once`` may be retried once with ``min_backoff=0``: the retry goes to the delay
    queue with an eta of now, the smallest delay Dramatiq allows.
    """
    broker = RedisBroker(url=url)
    broker.add_middleware(CurrentMessage())
    actors = {
        "marker": dramatiq.actor(marker, broker=broker, queue_name=QUEUE),
        "noop": dramatiq.actor(noop, broker=broker, queue_name=QUEUE),
        "fail_once": dramatiq.actor(
            fail_once, broker=broker, queue_name=QUEUE, max_retries=1, min_backoff=0
        ),
    }
    return broker, actors


broker, actors = connect(os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)
