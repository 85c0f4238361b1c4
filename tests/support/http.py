"""Helpers for the HTTP service's tests: submit over HTTP, wait for jobs, snapshot Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from fastapi.testclient import TestClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobsim import QueueConfig, RetryPolicy

FAST = QueueConfig(retry=RetryPolicy(kind="fixed", base_s=0.001, cap_s=0.001))
"""A queue config whose retries are due at once, so failing jobs finish quickly."""


def until(predicate: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
    return value


def unreachable_redis(port: int) -> redis.Redis:
    """A client of a port nothing listens on that fails at once: redis-py's default client
    retries a refused connection three times with a backoff of up to 10 s (that is not what is
    tested, and it made each 503 test take ~17 s)."""
    return redis.Redis(
        port=port, socket_connect_timeout=0.2, decode_responses=True, retry=Retry(NoBackoff(), 0)
    )


def snapshot(client: redis.Redis) -> dict[str, object]:
    """Every key of the server and its dumped value, to prove a call wrote nothing."""
    return {key: client.dump(key) for key in client.scan_iter(match="*")}


def job_status(http: TestClient, task_id: str) -> dict[str, Any]:
    """``GET /status/{task_id}``, which must answer 200."""
    response = http.get(f"/status/{task_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_finished(http: TestClient, ids: list[str]) -> list[dict[str, Any]]:
    """The status of each job once it is ``completed`` or ``failed``."""

    def finished(task_id: str) -> dict[str, Any] | None:
        body = job_status(http, task_id)
        return body if body["status"] in ("completed", "failed") else None

    return [until(lambda task_id=task_id: finished(task_id)) for task_id in ids]


def submit(http: TestClient, **body: Any) -> str:
    """``POST /submit`` with a JSON body, which must answer 200; returns the job id."""
    response = http.post("/submit", json=body)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["task_id"]
    return task_id
