"""What stands between a request and the routes of :mod:`jobsim.api`: the API-key and body-size
guard, the check for unknown query parameters, and the one mapping of errors to HTTP answers.

Every error answer is an :class:`jobsim.api_models.ErrorBody` whose ``detail`` starts with the
offending field: ``{"detail": "priority: ...", "field": "priority", "error": "..."}``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobsim.api.schemas import ErrorBody
from jobsim.errors import (
    ConnectError,
    InvalidInputError,
    InvalidStateError,
    JobNotFoundError,
    PayloadTooLargeError,
)
from jobsim.models import JobStatus

API_KEY_HEADER = "X-API-Key"
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""Paths served without the API key: the health probe, and the docs (they hold no data)."""

STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (PayloadTooLargeError, 413),
    (InvalidInputError, 422),
    (JobNotFoundError, 404),
    (InvalidStateError, 409),
    (ConnectError, 503),
    (redis.ConnectionError, 503),
    (redis.TimeoutError, 503),
    (RecursionError, 422),  # a payload nested deeper than Python's JSON codec goes
)
"""The exception tree -> HTTP status, most specific first: the one table of error codes."""


class NotADeadLetterError(JobNotFoundError):
    """The job exists but is not in the dead-letter queue (404 for a dead-letter route)."""

    def __init__(self, job_id: str, status: JobStatus) -> None:
        super().__init__(job_id)
        self.args = (f"job {job_id!r} is {status.value}, not in the dead-letter queue",)


def error_response(status: int, detail: str, field: str | None, error: str) -> JSONResponse:
    """An error answer whose message starts with the field it names.

    Args:
        status: the HTTP status.
        detail: what is wrong.
        field: the offending field, if there is one.
        error: the kind of error (an exception class name, or a short tag).

    Returns:
        The JSON response.
    """
    body = ErrorBody(detail=f"{field}: {detail}" if field else detail, field=field, error=error)
    return JSONResponse(body.model_dump(), status_code=status)


async def known_query_only(request: Request) -> None:
    """Reject a query parameter the operation does not take (a typo such as ``limt``).

    Raises:
        RequestValidationError: naming the first unknown parameter.
    """
    route = request.scope.get("route")
    params = route.dependant.query_params if isinstance(route, APIRoute) else []
    known = sorted(p.alias for p in params)
    for name in request.query_params:
        if name not in known:
            takes = ", ".join(known) or "none"
            msg = f"unknown query parameter; this operation takes {takes}"
            raise RequestValidationError([{"loc": ("query", name or "''"), "msg": msg}])


def install_error_handlers(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Answer the exception tree by :data:`STATUS_OF`, and FastAPI's own errors naming the field.

    Args:
        app: the application.
        routes: its routes, for the ``Allow`` header of a 405.
    """

    async def jobsim_error(request: Request, exc: Exception) -> JSONResponse:
        code = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
        field, detail, error = getattr(exc, "field", None), str(exc), type(exc).__name__
        if isinstance(exc, (JobNotFoundError, InvalidStateError)):
            field = "task_id"
        elif isinstance(exc, RecursionError):
            field, detail, error = "payload", "nested too deeply", "InvalidPayloadError"
        elif code == 503:
            detail, error = f"Redis unreachable: {exc}", "unavailable"
        return error_response(code, detail, field, error)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first: dict[str, Any] = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]
        if first.get("type") == "json_invalid":
            error = first.get("ctx", {}).get("error", "")
            return error_response(422, f"not valid JSON ({error})", "body", "json_invalid")
        msg = str(first.get("msg")).removeprefix("Value error, ")
        return error_response(422, msg, ".".join(loc) or "body", "validation_error")

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400:  # FastAPI could not parse the body (bad encoding, depth)
            return error_response(422, f"cannot be parsed: {exc.detail}", "body", "body_invalid")
        response = error_response(exc.status_code, str(exc.detail), None, "http_error")
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not just the first route's
            response.headers["Allow"] = ", ".join(_methods_of(routes, request.url.path))
        return response

    for kind, _ in STATUS_OF:
        app.add_exception_handler(kind, jobsim_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)


def _methods_of(routes: Sequence[BaseRoute], path: str) -> list[str]:
    """The documented methods of a path; a literal path (``/dead-letters/requeue``) wins over
    a template that also matches it (``/dead-letters/{task_id}``)."""
    api_routes = [r for r in routes if isinstance(r, APIRoute)]
    literal = [r for r in api_routes if r.path == path]
    matching = literal or [r for r in api_routes if r.path_regex.match(path)]
    return sorted({method for route in matching for method in route.methods or ()})


class Guard:
    """ASGI middleware: checks the API key, then the body size, before anything else runs.

    Bodies are read here up to the limit (with or without a ``Content-Length``) and handed on,
    so an oversized or unauthorized request never reaches a route.

    Args:
        app: the application it wraps.
        api_key: the key every path but :data:`OPEN_PATHS` requires (``None``: no key).
        max_body_bytes: the largest request body accepted (413 above it).
    """

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 401 or 413 at once, or pass the request on with its body read."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.api_key is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(API_KEY_HEADER.lower().encode(), b"")
            if not hmac.compare_digest(given, self.api_key):
                msg = "missing or wrong API key"
                await error_response(401, msg, API_KEY_HEADER, "unauthorized")(scope, receive, send)
                return
        declared = headers.get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(int(declared))(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                await self._too_large(size)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _too_large(self, size: int) -> JSONResponse:
        detail = f"request body of {size} bytes is over the limit of {self.max_body_bytes}"
        return error_response(413, detail, "body", "PayloadTooLargeError")


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
