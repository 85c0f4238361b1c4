"""Hardening of the HTTP service: a stock Prometheus can scrape `/metrics` with the key
(Bearer), 401 and 503 answers carry their standard headers, a 503 never shows where Redis is,
and each documented error code has its own example in the OpenAPI document."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from jobsim import JobQueue
from jobsim.api import API_KEY_ENV, create_app
from jobsim.localredis import free_port
from tests.support.http import snapshot, unreachable_redis


def test_metrics_accepts_the_key_as_a_bearer_token_as_prometheus_sends_it(
    make_queue, monkeypatch
) -> None:
    """Prometheus 2.x only sends `Authorization: Bearer <key>`; that works on every guarded
    route, like `X-API-Key`, and a wrong bearer token is still 401."""
    monkeypatch.setenv(API_KEY_ENV, "s3cret")
    with TestClient(create_app(make_queue(), workers=0)) as http:
        ok = http.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200, ok.text
        assert "jobsim" in ok.text
        submitted = http.post(
            "/submit", json={"task": "noop"}, headers={"Authorization": "bearer s3cret"}
        )
        assert submitted.status_code == 200, submitted.text
        for value in ("Bearer wrong", "Basic czNjcmV0", "s3cret", "Bearer", "Bearer  s3cret x"):
            response = http.get("/metrics", headers={"Authorization": value})
            assert response.status_code == 401, value


def test_a_401_carries_www_authenticate_and_writes_nothing(make_queue, client) -> None:
    """RFC 9110: a 401 names its scheme, so clients (and Prometheus) know to send a Bearer."""
    with TestClient(create_app(make_queue(), workers=0, api_key="k")) as http:
        before = snapshot(client)
        response = http.post("/submit", json={"task": "noop"})
        assert snapshot(client) == before
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="jobsim"'


def test_a_503_carries_retry_after_and_never_the_redis_address() -> None:
    """With Redis gone, every 503 (routes and `/health`) says when to retry, and its body does
    not tell a caller the internal host:port of Redis."""
    port = free_port()
    dead = unreachable_redis(port)
    http = TestClient(create_app(JobQueue(dead, "gone"), workers=0))  # no lifespan: no Redis
    for method, path in [("GET", "/stats"), ("GET", "/status/x"), ("GET", "/health")]:
        response = http.request(method, path)
        assert response.status_code == 503, (path, response.text)
        assert int(response.headers["retry-after"]) > 0, path
        assert str(port) not in response.text and "localhost" not in response.text, response.text
    response = http.post("/submit", json={"task": "noop"})
    assert response.status_code == 503 and "retry-after" in response.headers
    assert str(port) not in response.text


def test_the_openapi_document_lists_the_bearer_scheme_beside_the_header(make_queue) -> None:
    """Swagger's *Authorize* offers both ways the guard accepts the key."""
    with TestClient(create_app(make_queue(), workers=0, api_key="k")) as http:
        spec = http.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"].values()
    assert {"type": "http", "scheme": "bearer"} in [
        {k: s[k] for k in ("type", "scheme") if k in s} for s in schemes
    ]


@pytest.mark.parametrize("api_key", ["", "k"])
def test_each_documented_error_code_has_its_own_example(make_queue, api_key: str) -> None:
    """Every route's error responses show an example of that status (a 404 example names
    `task_id`, a 503 says Redis is unreachable), not the same 422 example everywhere."""
    with TestClient(create_app(make_queue(), workers=0, api_key=api_key)) as http:
        spec = http.get("/openapi.json").json()
    seen = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if not code.startswith(("4", "5")) or path == "/health":
                    continue
                example = response["content"]["application/json"].get("example")
                assert example is not None, (method, path, code)
                seen.add((code, example["error"], example.get("field")))
                if code == "404":
                    assert example.get("field") == "task_id", (method, path)
                if code == "503":
                    assert example["error"] == "unavailable"
                if code == "401":
                    assert example["error"] == "unauthorized"
                if code == "413":
                    assert example["error"] == "PayloadTooLargeError"
                if code == "409":
                    assert example["error"] == "InvalidStateError"
    codes = {code for code, _, _ in seen}
    assert {"404", "409", "413", "422", "503"} <= codes
    assert ("401" in codes) is bool(api_key)
    assert len({(error, field) for _, error, field in seen}) == len(codes)
