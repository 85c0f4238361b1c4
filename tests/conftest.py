"""Fixtures: every queue test runs on the embedded fakeredis backend AND on a real
redis-server that the suite starts itself on a free loopback port.

With ``JOBSIM_REQUIRE_REDIS=1`` (set by ``.ci/run``) a missing ``redis-server`` fails the
run instead of skipping the real-server half.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import fakeredis
import pytest
import redis

from jobsim import JobQueue, QueueConfig, connect
from jobsim.connection import embedded_client
from jobsim.localredis import LocalRedis, redis_server_binary
from tests.support.cluster import deployments, redis_cluster, redis_sentinel  # noqa: F401

REQUIRE_REDIS = os.environ.get("JOBSIM_REQUIRE_REDIS") == "1"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    """A private redis-server for the whole session."""
    if redis_server_binary() is None:
        if REQUIRE_REDIS:
            pytest.fail("JOBSIM_REQUIRE_REDIS=1 but redis-server is not on PATH")
        pytest.skip("redis-server is not installed")
    with LocalRedis() as server:
        yield server


@pytest.fixture(params=["fake", "server"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(backend: str, request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """A client of a fresh fakeredis server, or of the suite's redis-server, emptied."""
    if backend == "fake":
        c = embedded_client(fakeredis.FakeServer())
    else:
        server: LocalRedis = request.getfixturevalue("redis_server")
        c = connect(server.url)
        c.flushall()
    yield c
    c.close()


@pytest.fixture
def make_queue(client: redis.Redis) -> Callable[..., JobQueue]:
    """Build queues with a unique name on the test's client."""

    def make(config: QueueConfig | None = None, name: str | None = None) -> JobQueue:
        return JobQueue(client, name or f"t{uuid.uuid4().hex[:8]}", config)

    return make
