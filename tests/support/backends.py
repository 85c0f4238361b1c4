"""The URL of a server for each test backend, for tests that need a URL, not a client."""

from __future__ import annotations

import fakeredis
import pytest

from jobsim import connect
from jobsim.connection import client_url, embedded_client


def backend_url(backend: str, request: pytest.FixtureRequest) -> str:
    """``server``: the suite's redis-server, emptied; ``fake``: the loopback bridge of a
    fresh in-process fakeredis server (:func:`jobsim.connection.client_url`)."""
    if backend == "fake":
        return client_url(embedded_client(fakeredis.FakeServer()))
    server = request.getfixturevalue("redis_server")
    client = connect(server.url)
    client.flushall()
    client.close()
    return str(server.url)
