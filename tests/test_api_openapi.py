"""Property-based test of the whole OpenAPI schema, on both backends: generated requests, valid
and invalid, never get a 5xx, and every answer matches the schema (status, content type, body).

Schemathesis runs every operation with at most 50 generated examples, with the API key set, so
its auth checks run too.
"""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import redis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from jobsim import JobQueue
from jobsim.api import create_app
from jobsim.connection import embedded_client

API_KEY = "test-key"


def _app(client: redis.Redis) -> FastAPI:
    return create_app(JobQueue(client, "schema"), workers=0, api_key=API_KEY)


# The schema is the same on both backends; each test sends its requests to its own app.
_schema_app = _app(embedded_client(fakeredis.FakeServer()))
# `GET /events` is a stream that lasts `max_s` (>= 1 s) per request: 50 examples would take
# minutes; tests/test_api_dashboard.py checks its answers and its validation instead.
schema = schemathesis.openapi.from_asgi("/openapi.json", _schema_app).exclude(path="/events")


@schema.auth()
class _ApiKey:
    """Send the service's key in ``X-API-Key``."""

    def get(self, case: Any, context: Any) -> str:
        return API_KEY

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "X-API-Key": data}


@pytest.fixture
def app(client: redis.Redis) -> FastAPI:
    """The service on the test's backend (fakeredis or a real redis-server), without workers."""
    return _app(client)


@schema.parametrize()
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema_and_never_5xx(case: Any, app: FastAPI) -> None:
    """Generated requests get documented answers that match the schema, and no 5xx."""
    case.call_and_validate(app=app)
