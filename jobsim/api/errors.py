"""How the HTTP service answers an error: the one table from the exception tree of
:mod:`jobsim.errors` to HTTP status codes, and the handlers and answers built from it.

Every error answer is an :class:`jobsim.api.views.ErrorBody` whose ``detail`` starts with
the offending field: ``{"detail": "priority: ...", "field": "priority", "error": "..."}``.

=====================================  ======  ==============  ===========================
raised                                 status  ``field``       ``error``
=====================================  ======  ==============  ===========================
``PayloadTooLargeError``               413     its field       the class name
body over the service's size limit     413     ``body``        ``PayloadTooLargeError``
``InvalidInputError`` (and subclasses) 422     its field       the class name
a request FastAPI rejects              422     the parameter   ``validation_error``
body not JSON / not parseable          422     ``body``        ``json_invalid`` /
                                                               ``body_invalid``
payload nested too deeply              422     ``payload``     ``InvalidPayloadError``
missing or wrong API key               401     ``X-API-Key``   ``unauthorized``
``JobNotFoundError``                   404     ``task_id``     the class name
``InvalidStateError``                  409     ``task_id``     the class name
``ConflictError``: a ``job_id`` taken   409     ``job_id`` /    ``ConflictError``
by another job, an ``Idempotency-Key``          ``Idempotency-
reused with another body                        Key``
``ConnectError``, Redis unreachable    503     ``None``        ``unavailable``
unknown path / method                  404/405 ``None``        ``http_error`` (+ ``Allow``)
=====================================  ======  ==============  ===========================

The first matching row of :data:`STATUS_OF` wins, so a subclass is listed before its base.
A 401 carries ``WWW-Authenticate: Bearer realm="jobsim"``, a 503 carries ``Retry-After`` and
never the Redis address (it is logged by nobody and shown to nobody), a 405 carries ``Allow``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from jobsim.api.views import ErrorBody
from jobsim.errors import (
    ConnectError,
    InvalidInputError,
    InvalidStateError,
    JobNotFoundError,
    JobsimError,
    PayloadTooLargeError,
)
from jobsim.models import JobStatus

Responses = dict[int | str, dict[str, Any]]
"""The ``responses=`` a route documents, by status."""


class ConflictError(JobsimError):
    """The request clashes with what is stored: its ``job_id`` belongs to another job, or its
    ``Idempotency-Key`` was used with another body (409, naming ``field``)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (ConflictError, 409),
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

UNAUTHORIZED = 401
"""The status of a request without the right API key (checked before any route runs)."""
WWW_AUTHENTICATE = 'Bearer realm="jobsim"'
"""The challenge of a 401: the key also goes as ``Authorization: Bearer <key>``."""
RETRY_AFTER_S = 5
"""Seconds a 503 asks the caller to wait before trying again."""
UNAVAILABLE_DETAIL = "Redis unreachable; try again later"
"""The whole message of a 503: the address and the driver's message stay inside."""


class NotADeadLetterError(JobNotFoundError):
    """The job exists but is not in the dead-letter queue (404 for a dead-letter route)."""

    def __init__(self, job_id: str, status: JobStatus) -> None:
        super().__init__(job_id)
        self.args = (f"job {job_id!r} is {status.value}, not in the dead-letter queue",)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status :data:`STATUS_OF` gives an exception.

    Example:
        >>> status_of(JobNotFoundError("abc"))
        404

    Returns:
        The status, or ``None`` for an exception the table does not answer (a 500).
    """
    return next((code for kind, code in STATUS_OF if isinstance(exc, kind)), None)


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
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    if status == UNAUTHORIZED:
        headers = {"WWW-Authenticate": WWW_AUTHENTICATE}
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def answer(exc: Exception) -> JSONResponse:
    """The answer to an exception of :data:`STATUS_OF`, naming its field.

    Args:
        exc: an instance of one of the table's exception types.

    Returns:
        The JSON response.

    Raises:
        TypeError: the table does not answer this exception.
    """
    code = status_of(exc)
    if code is None:
        raise TypeError(f"no HTTP status for {type(exc).__name__}")
    field, detail, error = getattr(exc, "field", None), str(exc), type(exc).__name__
    if isinstance(exc, (JobNotFoundError, InvalidStateError)):
        field = "task_id"
    elif isinstance(exc, RecursionError):
        field, detail, error = "payload", "nested too deeply", "InvalidPayloadError"
    elif code == 503:
        detail, error = UNAVAILABLE_DETAIL, "unavailable"
    return error_response(code, detail, field, error)


def unauthorized(header: str) -> JSONResponse:
    """The answer to a request whose API key, sent in ``header``, is missing or wrong."""
    return error_response(UNAUTHORIZED, "missing or wrong API key", header, "unauthorized")


EXAMPLES: dict[int, tuple[str, str | None, str]] = {
    401: ("missing or wrong API key", "X-API-Key", "unauthorized"),
    404: ("job 'tXyZ' not found", "task_id", "JobNotFoundError"),
    409: ("job 'tXyZ' is queued, not failed", "task_id", "InvalidStateError"),
    413: ("payload of 70012 bytes is over the limit of 65536", "payload", "PayloadTooLargeError"),
    422: ("priority 12 is outside 0..9", "priority", "InvalidPriorityError"),
    503: (UNAVAILABLE_DETAIL, None, "unavailable"),
}
"""The documented example of each error status: (detail, field, error)."""


def error_doc(status: int, description: str) -> dict[str, Any]:
    """One entry of a route's documented ``responses``: an :class:`ErrorBody`, described, with
    the example of its own status from :data:`EXAMPLES`."""
    detail, field, error = EXAMPLES[status]
    example = ErrorBody(detail=f"{field}: {detail}" if field else detail, field=field, error=error)
    headers: dict[str, Any] = {}
    if status == 503:
        headers["Retry-After"] = {"description": "seconds to wait", "schema": {"type": "integer"}}
    if status == UNAUTHORIZED:
        headers["WWW-Authenticate"] = {"schema": {"type": "string", "example": WWW_AUTHENTICATE}}
    doc = {
        "model": ErrorBody,
        "description": description,
        "content": {"application/json": {"example": example.model_dump()}},
    }
    return doc | ({"headers": headers} if headers else {})


def install_error_handlers(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Answer the exception tree by :data:`STATUS_OF`, and FastAPI's own errors naming the field.

    Args:
        app: the application.
        routes: its routes, for the ``Allow`` header of a 405.
    """

    async def jobsim_error(request: Request, exc: Exception) -> JSONResponse:
        return answer(exc)

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
