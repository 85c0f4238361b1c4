"""Session fixtures: a Redis Cluster (three masters with a replica each) and a Sentinel
deployment (one master, one replica, three sentinels) on free loopback ports, started in
parallel, killed as process groups at the end of the session.

tests/conftest.py imports the fixtures; a test that asks for neither starts nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from jobsim.localcluster import LocalCluster, LocalSentinel
from jobsim.localredis import redis_server_binary

REQUIRE_REDIS = os.environ.get("JOBSIM_REQUIRE_REDIS") == "1"


def _start_all(*deployments: Any) -> None:
    """Start every deployment at once (each takes seconds of waiting, little CPU)."""
    errors: list[BaseException] = []

    def start(d: Any) -> None:
        try:
            d.start()
        except BaseException as exc:  # re-raised below, in the fixture's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(d,)) for d in deployments]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def deployments() -> Iterator[tuple[LocalCluster, LocalSentinel]]:
    """Both deployments, started together."""
    if redis_server_binary() is None:
        if REQUIRE_REDIS:
            pytest.fail("JOBSIM_REQUIRE_REDIS=1 but redis-server is not on PATH")
        pytest.skip("redis-server is not installed")
    cluster, sentinel = LocalCluster(node_timeout_ms=1000), LocalSentinel(down_after_ms=500)
    try:
        _start_all(cluster, sentinel)
        yield cluster, sentinel
    finally:
        cluster.stop()
        sentinel.stop()


@pytest.fixture(scope="session")
def redis_cluster(deployments: tuple[LocalCluster, LocalSentinel]) -> LocalCluster:
    """Three masters with one replica each; ``.url`` is a ``redis+cluster://`` URL."""
    return deployments[0]


@pytest.fixture(scope="session")
def redis_sentinel(deployments: tuple[LocalCluster, LocalSentinel]) -> LocalSentinel:
    """One master, one replica, three sentinels; ``.url`` is a ``redis+sentinel://`` URL."""
    return deployments[1]
