"""Metrics of the service process itself, beside the queue-wide ones of
:mod:`jobsim.api.metrics`: HTTP requests (count and latency per route and status) and the
process (CPU, memory, open files: prometheus_client's process collector).

Routes are labelled by their template (``/status/{task_id}``, not each id), and anything that
matched no route as ``unmatched``, so the number of series stays bounded.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
"""Buckets of ``jobsim_http_request_duration_seconds``."""


class RequestMetrics:
    """ASGI middleware counting each HTTP request and timing it, by method, route and status.

    Args:
        app: the application it wraps.
        registry: where the metrics (and the process collector) are registered.
    """

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry) -> None:
        self.app = app
        labels = ["method", "route", "status"]
        self.requests = Counter(
            "jobsim_http_requests", "HTTP requests answered.", labels, registry=registry
        )
        self.latency = Histogram(
            "jobsim_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer.",
            labels,
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        ProcessCollector(registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; count and time it once its answer has been sent."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before any answer is a 500 to the client

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            labels = (scope["method"], path, str(status))
            self.requests.labels(*labels).inc()
            self.latency.labels(*labels).observe(time.perf_counter() - started)
