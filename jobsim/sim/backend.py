"""Which Redis a run talks to, and how its clock relates to the workers' clock.

``embedded`` is a fresh in-process fakeredis; ``local`` a throwaway redis-server the run
starts (the only kind the run may restart); anything else is a ``redis://`` URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import fakeredis
import redis

from jobsim.connection import connect, embedded_client, server_time_s
from jobsim.localredis import LocalRedis
from jobsim.sim.faults import FaultPlan
from jobsim.sim.setup import Setup


@contextmanager
def open_backend(
    setup: Setup, faults: FaultPlan
) -> Iterator[tuple[redis.Redis, LocalRedis | None]]:
    """A client for the run's Redis, and the server if this run started one.

    A ``local`` server gets the persistence the plan's restart asks for.
    """
    if setup.backend == "embedded":
        yield embedded_client(fakeredis.FakeServer()), None
    elif setup.backend == "local":
        persistence = faults.redis_restart.persistence if faults.redis_restart else "none"
        with LocalRedis(persistence=persistence) as server:
            yield connect(server.url), server
    else:
        yield connect(setup.backend), None


def clock_offset_s(client: redis.Redis) -> float:
    """This host's epoch clock minus the Redis server's ``TIME``, in seconds.

    The queue stamps every attempt with Redis time; a task can only read its own clock.
    Adding this offset to a Redis time gives the same instant on the task's clock (to within
    half a round trip: the server's reading is paired with the midpoint of the call).
    """
    before = time.time()
    server = server_time_s(client)
    after = time.time()
    return (before + after) / 2 - server
