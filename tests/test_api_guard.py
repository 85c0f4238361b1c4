"""What runs before any route (:mod:`jobsim.api.guard`): the API key, the body-size limit and
the check for unknown query parameters; a request they refuse never reaches the queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from jobsim.api import API_KEY_ENV, API_KEY_HEADER, create_app
from tests.support.http import snapshot, submit


def test_api_key_guards_every_endpoint_but_health_and_a_rejected_call_changes_nothing(
    make_queue, client, monkeypatch
) -> None:
    """With `JOBSIM_API_KEY` set, a missing or wrong `X-API-Key` gets 401 and writes nothing;
    `/health` and the docs stay open; the right key works."""
    monkeypatch.setenv(API_KEY_ENV, "s3cret")
    with TestClient(create_app(make_queue(), workers=0)) as http:
        before = snapshot(client)
        for headers in ({}, {"X-API-Key": "wrong"}):
            for method, path in [("POST", "/submit"), ("GET", "/stats"), ("GET", "/metrics")]:
                response = http.request(method, path, json={"task": "noop"}, headers=headers)
                assert response.status_code == 401, (path, response.text)
                assert response.json()["field"] == "X-API-Key"
            assert http.delete("/dead-letters", headers=headers).status_code == 401
        assert snapshot(client) == before
        assert http.get("/health").status_code == 200
        assert http.get("/docs").status_code == 200
        ok = http.post("/submit", json={"task": "noop"}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200


def _chunks(total: int, size: int = 1000) -> Iterator[bytes]:
    yield b'{"task": "noop", "payload": "'
    for _ in range(total // size):
        yield b"y" * size
    yield b'"}'


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_413_before_any_route_runs(
    make_queue, client, streamed: bool
) -> None:
    """A body over `max_body_bytes` is refused with 413 naming `body`, whether or not it
    declares its length, and nothing is written."""
    with TestClient(create_app(make_queue(), workers=0, max_body_bytes=2000)) as http:
        before = snapshot(client)
        body = _chunks(5000) if streamed else b"".join(_chunks(5000))
        response = http.post("/submit", content=body, headers={"content-type": "application/json"})
        assert snapshot(client) == before
        small = http.post(
            "/submit", content=b"".join(_chunks(1000)), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413, response.text
    assert response.json()["field"] == "body"
    assert response.json()["error"] == "PayloadTooLargeError"
    assert small.status_code == 200, small.text


def test_without_a_key_every_route_is_open(make_queue, monkeypatch) -> None:
    """An empty `api_key` (even with `JOBSIM_API_KEY` set) means no key is asked for."""
    monkeypatch.setenv(API_KEY_ENV, "s3cret")
    with TestClient(create_app(make_queue(), workers=0, api_key="")) as http:
        assert submit(http, task="noop")
        assert http.get("/stats").status_code == 200


def test_the_key_header_is_the_documented_one(make_queue) -> None:
    """The OpenAPI document declares the header the guard reads, and documents the 401."""
    with TestClient(create_app(make_queue(), workers=0, api_key="k")) as http:
        spec = http.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"].values()
    headers = [(s["in"], s["name"]) for s in schemes if s["type"] == "apiKey"]
    assert headers == [("header", API_KEY_HEADER)]
    assert "401" in spec["paths"]["/stats"]["get"]["responses"]


@pytest.mark.parametrize("path", ["/stats?windw_s=5", "/health?verbose=1", "/metrics?x="])
def test_an_unknown_query_parameter_is_422_naming_it(make_queue, path: str) -> None:
    """A query parameter the operation does not take (a typo) is refused, naming it."""
    with TestClient(create_app(make_queue(), workers=0)) as http:
        response = http.get(path)
    name = path.split("?")[1].split("=")[0]
    assert response.status_code == 422 and response.json()["field"] == name
