"""The application: ``create_app``, the lifespan that runs the workers, and the routes.

Routes only call the queue and shape its answers with :mod:`jobsim.api.schemas`; what runs
before them is :mod:`jobsim.api.guard`, and every error they raise is answered by the table
of :mod:`jobsim.api.errors` (input 422, payload too large 413, unknown id 404, wrong state
409, Redis unreachable 503), so a route never builds an error answer itself.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from jobsim import __version__
from jobsim.api import control, dashboard, events, submitting
from jobsim.api.contract import submit_schema
from jobsim.api.docs import install_docs
from jobsim.api.errors import (
    RETRY_AFTER_S,
    NotADeadLetterError,
    Responses,
    error_doc,
    install_error_handlers,
)
from jobsim.api.guard import API_KEY_HEADER, Guard, known_query_only
from jobsim.api.http_metrics import RequestMetrics
from jobsim.api.metrics import QueueCollector, throughput
from jobsim.api.schemas import SEED_TASK, SEED_TASK_SECONDS, SubmitResponse
from jobsim.api.views import (
    DeadLetterList,
    HealthResponse,
    JobDetail,
    JobList,
    JobView,
    Purged,
    RequeuedAll,
    StatsResponse,
)
from jobsim.errors import InvalidInputError
from jobsim.models import JobStatus
from jobsim.pool import Mode, WorkerPool
from jobsim.pool_process import PoolProcess
from jobsim.queue import JobQueue

API_KEY_ENV = "JOBSIM_API_KEY"
"""Environment variable holding the API key, read when ``create_app`` is given none."""


def create_app(
    queue: JobQueue,
    *,
    workers: int = 4,
    mode: Mode = "thread",
    grace_s: float = 5.0,
    job_timeout_s: float | None = None,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    worker_process: bool = False,
) -> FastAPI:
    """Build the HTTP service of one queue.

    Args:
        queue: the queue to serve; kept on ``app.state.queue``.
        workers: workers the lifespan starts (0: none, e.g. when ``jobsim worker`` runs them).
        mode: ``"thread"`` or ``"process"`` workers.
        grace_s: on shutdown, how long in-flight jobs may run before they go back to the queue.
        job_timeout_s: default per-job timeout of the workers.
        api_key: required in the ``X-API-Key`` header of every request but ``/health`` and the
            docs. ``None`` reads ``$JOBSIM_API_KEY``; empty means no key.
        max_body_bytes: largest request body (default: 4 x the queue's payload limit + 4 KiB,
            room for JSON whitespace and escapes; the queue enforces the exact payload limit).
        worker_process: run the thread workers in one supervised child process
            (:class:`jobsim.pool_process.PoolProcess`) instead of in this one, so they share
            no interpreter lock with the HTTP event loop. Needs a real Redis (the embedded
            backend's data lives in this process) and the default task registry.

    Returns:
        The FastAPI application; serve it with uvicorn, or ``jobsim serve``.

    Raises:
        InvalidInputError: a setting out of range.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InvalidInputError("workers must be an integer >= 0", field="workers", value=workers)
    if mode not in ("thread", "process"):
        raise InvalidInputError("mode must be 'thread' or 'process'", field="mode", value=mode)
    if worker_process and mode == "process":
        raise InvalidInputError(
            "process workers are already processes of their own; use mode='thread' with "
            "worker_process",
            field="worker_process",
            value=worker_process,
        )
    if not grace_s >= 0:
        raise InvalidInputError("grace_s must be >= 0", field="grace_s", value=grace_s)
    key = os.environ.get(API_KEY_ENV, "") if api_key is None else api_key
    app = FastAPI(
        title="jobsim",
        version=__version__,
        description=_DESCRIPTION.format(task=SEED_TASK, seconds=SEED_TASK_SECONDS),
        lifespan=_lifespan,
        docs_url=None,  # jobsim.api.docs serves them without a CDN
        redoc_url=None,
    )
    state = app.state
    state.queue = queue
    state.pool = None
    state.pool_settings = {"concurrency": workers, "mode": mode, "grace_s": grace_s}
    state.worker_process = worker_process
    if worker_process and workers:
        PoolProcess(queue, workers)  # refuse the embedded backend now, not at startup
    state.job_timeout_s = job_timeout_s
    state.metrics = QueueCollector(queue)
    state.registry = CollectorRegistry(auto_describe=False)
    state.registry.register(state.metrics)
    limit = max_body_bytes or 4 * queue.config.max_payload_bytes + 4096
    app.add_middleware(Guard, api_key=key or None, max_body_bytes=limit)
    app.add_middleware(RequestMetrics, registry=state.registry)  # outermost: times the guard too
    dashboard_routes = [*dashboard.router.routes, *dashboard.page_router.routes]
    own_routes = [*submitting.router.routes, *control.router.routes]
    install_error_handlers(
        app,
        [
            *own_routes,
            *_router.routes,
            *_open_router.routes,
            *dashboard_routes,
            *events.router.routes,
        ],
    )
    common: Responses = {
        422: error_doc(422, "bad input; `field` names it"),
        503: error_doc(503, "Redis unreachable; retry after `Retry-After` seconds"),
    }
    secured = []
    if key:
        common[401] = error_doc(401, f"missing or wrong {API_KEY_HEADER} or Bearer token")
        secured = [
            Security(APIKeyHeader(name=API_KEY_HEADER, auto_error=False)),
            Security(HTTPBearer(auto_error=False, description="the key, as Prometheus sends it")),
        ]
    for own in (submitting.router, control.router):
        app.include_router(own, dependencies=secured, responses=common)
    app.include_router(_router, dependencies=secured, responses=common)
    app.include_router(_open_router)
    for routes in (dashboard.router, events.router):  # the dashboard's data: behind the key
        app.include_router(routes, dependencies=secured, responses=common)
    app.include_router(dashboard.page_router)
    install_docs(app)
    _publish_submit_schema(app, queue)
    return app


def _publish_submit_schema(app: FastAPI, queue: JobQueue) -> None:
    """Document ``POST /submit`` per task (see :func:`jobsim.api.contract.submit_schema`), from
    the tasks registered when the schema is first served."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            components = generate()["components"]["schemas"]
            body, defs = submit_schema(queue.registry)
            components |= defs
            components["SubmitRequest"] = body
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


_DESCRIPTION = """\
A Redis-backed priority job queue. `POST /submit` a job, then watch `GET /status/{{task_id}}`
go `queued` -> `processing` -> `completed` (or `retrying`, and finally `failed`: the
dead-letter queue).

A body without `task` runs the seed's simulated work, `{task}`, for the payload's `seconds`
(default {seconds:g}). Errors answer `{{"detail", "field", "error"}}`: 422 bad input, 413 payload
too large, 404 unknown id, 409 wrong state, 503 Redis unreachable. If the service has an API
key, send it in the `X-API-Key` header or as `Authorization: Bearer <key>` (what Prometheus
sends; use *Authorize*). A 401 carries `WWW-Authenticate`, a 503 `Retry-After`.
"""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the workers (threads here, or a supervised worker process); on shutdown stop
    them gracefully (in-flight jobs get the grace period, then go back to the queue)."""
    state = app.state
    await run_in_threadpool(state.metrics.start)
    pool: WorkerPool | PoolProcess | None = None
    settings = state.pool_settings
    if settings["concurrency"] and state.worker_process:
        pool = PoolProcess(
            state.queue,
            settings["concurrency"],
            job_timeout_s=state.job_timeout_s,
            grace_s=settings["grace_s"],
        )
        await run_in_threadpool(pool.start)
    elif settings["concurrency"]:
        pool = WorkerPool(state.queue, job_timeout_s=state.job_timeout_s, **settings)
        pool.start()
    state.pool = pool
    try:
        yield
    finally:
        if pool is not None:
            await run_in_threadpool(pool.stop)
        state.pool = None
        await state.queue.aclose()  # the connections POST /submit opened on this loop


# --- routes ---------------------------------------------------------------------------------


async def _queue(request: Request) -> JobQueue:  # async: no thread hop for a lookup
    queue: JobQueue = request.app.state.queue
    return queue


QueueDep = Annotated[JobQueue, Depends(_queue)]
TaskId = Annotated[str, Path(description="the id `POST /submit` answered")]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many jobs")]
Offset = Annotated[int, Query(ge=0, le=10**9, description="skip this many jobs first")]
_NOT_FOUND: Responses = {404: error_doc(404, "no job with this id")}


_router = APIRouter(dependencies=[Depends(known_query_only)])
_open_router = APIRouter(dependencies=[Depends(known_query_only)])


@_router.get("/jobs", response_model=JobList, tags=["jobs"])
def list_jobs(
    queue: QueueDep,
    status: Annotated[JobStatus, Query(description="list the jobs in this status")],
    limit: Limit = 100,
    offset: Offset = 0,
) -> JobList:
    """Jobs in one status: queued in service order, processing by lease deadline, retrying
    by due time, completed and failed by finish time (oldest first)."""
    total = queue.stats().by_status()[status.value]
    jobs = queue.jobs(status, limit=limit, offset=offset)
    return JobList(status=status, total=total, offset=offset, jobs=[JobView.of(j) for j in jobs])


@_router.get("/jobs/{task_id}", response_model=JobDetail, tags=["jobs"], responses=_NOT_FOUND)
def job_detail(task_id: TaskId, queue: QueueDep) -> JobDetail:
    """A job with every attempt: worker, start, end, outcome and error."""
    return JobDetail.of(queue.status(task_id))


@_router.get("/dead-letters", response_model=DeadLetterList, tags=["dead letters"])
def dead_letters(queue: QueueDep, limit: Limit = 100, offset: Offset = 0) -> DeadLetterList:
    """The dead-letter queue, oldest first, with every attempt's error."""
    jobs = queue.dead_letters(limit=limit, offset=offset)
    total = queue.stats().failed
    return DeadLetterList(total=total, offset=offset, jobs=[JobDetail.of(j) for j in jobs])


@_router.get(
    "/dead-letters/{task_id}", response_model=JobDetail, tags=["dead letters"], responses=_NOT_FOUND
)
def dead_letter(task_id: TaskId, queue: QueueDep) -> JobDetail:
    """One dead letter: payload and every attempt's error (404 if the job is not dead)."""
    job = queue.status(task_id)
    if job.status is not JobStatus.FAILED:
        raise NotADeadLetterError(task_id, job.status)
    return JobDetail.of(job)


@_router.post(
    "/dead-letters/{task_id}/requeue",
    response_model=SubmitResponse,
    tags=["dead letters"],
    responses={**_NOT_FOUND, 409: error_doc(409, "the job is not in the dead-letter queue")},
)
def requeue_dead(task_id: TaskId, queue: QueueDep) -> SubmitResponse:
    """Put one dead letter back in the queue with ``max_retries + 1`` fresh attempts."""
    queue.requeue_dead(task_id)
    return SubmitResponse(task_id=task_id)


@_router.post("/dead-letters/requeue", response_model=RequeuedAll, tags=["dead letters"])
def requeue_all_dead(queue: QueueDep) -> RequeuedAll:
    """Put every dead letter back in the queue."""
    return RequeuedAll(requeued=queue.requeue_all_dead())


@_router.delete("/dead-letters", response_model=Purged, tags=["dead letters"])
def purge_dead(queue: QueueDep) -> Purged:
    """Delete every dead letter and its record."""
    return Purged(purged=queue.purge_dead())


@_router.get("/stats", response_model=StatsResponse, tags=["service"])
def stats(
    queue: QueueDep,
    window_s: Annotated[float, Query(gt=0, le=86400, description="throughput window")] = 60.0,
) -> StatsResponse:
    """Counts per status, running totals, throughput over the window, and the workers."""
    now = queue.stats()
    return StatsResponse(
        queue=queue.name,
        counts=now.by_status(),
        totals=now.totals,
        throughput=throughput(queue, window_s),
        workers=queue.workers(),
    )


@_router.get(
    "/metrics",
    response_class=Response,
    tags=["service"],
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    """Prometheus text format: job counters, wait and run time histograms, depth per status."""
    text = generate_latest(request.app.state.registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


@_open_router.get(
    "/health",
    response_model=HealthResponse,
    tags=["service"],
    responses={503: {"model": HealthResponse, "description": "not ok: Redis or workers"}},
)
def health(request: Request, response: Response) -> HealthResponse:
    """Whether Redis answers and this service's workers heartbeat; 200 only when ok."""
    queue: JobQueue = request.app.state.queue
    pool: WorkerPool | PoolProcess | None = request.app.state.pool
    ids = pool.worker_ids if pool is not None else []
    try:
        queue.client.ping()
        alive_ids = {w.id for w in queue.workers() if w.alive}
    except redis.RedisError:
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return HealthResponse(
            status="down", queue=queue.name, redis=False, workers_expected=len(ids), workers_alive=0
        )
    alive = sum(worker_id in alive_ids for worker_id in ids)
    if alive < len(ids):
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return HealthResponse(
        status="ok" if alive == len(ids) else "degraded",
        queue=queue.name,
        redis=True,
        workers_expected=len(ids),
        workers_alive=alive,
    )
