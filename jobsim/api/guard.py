"""What stands between a request and the routes of :mod:`jobsim.api.app`: the API-key and
body-size guard, and the check for unknown query parameters. Their answers are built by
:mod:`jobsim.api.errors`, like every other error answer.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobsim.api.errors import answer, unauthorized
from jobsim.errors import PayloadTooLargeError

API_KEY_HEADER = "X-API-Key"
"""The request header that carries the API key (``Authorization: Bearer <key>`` works too)."""
OPEN_PATHS = frozenset(
    {"/", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
"""Paths served without the API key: the health probe, the docs and the dashboard's page (they
hold no data; the dashboard's script asks for the key and sends it on every data request)."""
OPEN_PREFIXES = ("/static/",)
"""Path prefixes served without the API key: the package's static files (scripts, styles)."""


def is_open(path: str) -> bool:
    """Whether ``path`` is served without the API key (:data:`OPEN_PATHS`,
    :data:`OPEN_PREFIXES`)."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


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


class Guard:
    """ASGI middleware: checks the API key, then the body size, before anything else runs.

    Bodies are read here up to the limit (with or without a ``Content-Length``) and handed on,
    so an oversized or unauthorized request never reaches a route.

    Args:
        app: the application it wraps.
        api_key: the key every path but the open ones (:func:`is_open`) requires (``None``: no key).
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
        guarded = self.api_key is not None and not is_open(scope["path"])
        if guarded and not self._key_matches(headers):
            await unauthorized(API_KEY_HEADER)(scope, receive, send)
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

    def _key_matches(self, headers: dict[bytes, bytes]) -> bool:
        """Whether ``X-API-Key`` or ``Authorization: Bearer`` (what Prometheus sends) carries
        the key; both are compared in constant time."""
        assert self.api_key is not None
        given = headers.get(API_KEY_HEADER.lower().encode(), b"")
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        bearer = token if scheme.lower() == b"bearer" else b""
        by_header = hmac.compare_digest(given, self.api_key)
        return hmac.compare_digest(bearer, self.api_key) or by_header

    def _too_large(self, size: int) -> Response:
        detail = f"request body of {size} bytes is over the limit of {self.max_body_bytes}"
        return answer(PayloadTooLargeError(detail, field="body", value=size))


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
