"""``GET /events``: the dashboard's live feed, as server-sent events.

Every ``interval_s`` the stream sends one ``snapshot`` event whose data is the JSON of
:func:`snapshot`: counts per status (whatever statuses the queue reports, so new ones appear
on the dashboard by themselves), running totals, throughput and wait over a short window, the
workers, the running jobs and the head of the dead-letter queue. The first snapshot is sent at
once. Everything is read from Redis, so several services (and workers anywhere) show the same
queue.

A stream ends after ``max_s`` seconds (the client reconnects at once): a server that is
shutting down waits for open responses, and an endless stream would hold it up. Browsers'
``EventSource`` cannot send an ``Authorization`` header, so the dashboard reads the stream
with ``fetch`` (which can); any SSE client that sends the key works.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from statistics import fmean
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from jobsim.api.guard import known_query_only
from jobsim.api.metrics import server_time_us, throughput
from jobsim.api.views import JobDetail, JobView
from jobsim.models import JobStatus
from jobsim.queue import JobQueue

WINDOW_S = 5.0
"""Throughput and wait in a snapshot are over this many seconds of Redis time."""
LISTED = 20
"""At most this many running jobs and dead letters in a snapshot."""
_WAIT_SAMPLE = 200  # newest finished jobs per set read for the wait figures

router = APIRouter(tags=["dashboard"], dependencies=[Depends(known_query_only)])


def snapshot(
    queue: JobQueue, *, window_s: float = WINDOW_S, listed: int = LISTED
) -> dict[str, Any]:
    """The state of ``queue`` the dashboard draws, as JSON-ready values.

    Args:
        queue: the queue to read.
        window_s: the window of ``throughput`` and ``wait``.
        listed: at most this many running jobs and dead letters.

    Returns:
        ``time`` (Redis time, s), ``queue``, ``counts`` (per status), ``paused`` (whether
        workers take no new jobs), ``totals`` (running
        totals), ``throughput`` (completed and failed per second over the window), ``wait``
        (``jobs``, ``mean_s``, ``max_s``: submit to first start, of jobs finished in the window),
        ``workers``, ``running`` (processing jobs) and ``dead_letters`` (``total``, ``jobs``
        with every attempt).
    """
    stats = queue.stats()
    running = queue.jobs(JobStatus.PROCESSING, limit=listed)
    dead = queue.dead_letters(limit=listed)
    return {
        "time": server_time_us(queue) / 1e6,
        "queue": queue.name,
        "counts": stats.by_status(),
        "paused": stats.paused,
        "totals": stats.totals,
        "throughput": throughput(queue, window_s).model_dump(mode="json"),
        "wait": recent_wait(queue, window_s),
        "workers": [w.model_dump(mode="json") for w in queue.workers()],
        "running": [JobView.of(j).model_dump(mode="json") for j in running],
        "dead_letters": {
            "total": stats.failed,
            "jobs": [JobDetail.of(j).model_dump(mode="json") for j in dead],
        },
    }


def recent_wait(queue: JobQueue, window_s: float) -> dict[str, float | int | None]:
    """Submit-to-first-start wait of the jobs that finished (completed or dead-lettered) in
    the last ``window_s`` seconds: how many, the mean and the largest, in seconds (``None``
    when none finished). At most the newest 200 of each set are read."""
    since = f"({server_time_us(queue) - round(window_s * 1e6)}"
    pipe = queue.client.pipeline(transaction=False)
    for key in (queue.keys.completed, queue.keys.dead):
        pipe.zrevrangebyscore(key, "+inf", since, start=0, num=_WAIT_SAMPLE)
    ids = [job_id for found in pipe.execute() for job_id in found]
    waits = [
        max(0.0, job.attempt_log[0].started_at - job.submitted_at)
        for job in queue.get_many(ids)
        if job.attempt_log and job.attempt_log[0].started_at is not None
    ]
    return {
        "jobs": len(waits),
        "mean_s": fmean(waits) if waits else None,
        "max_s": max(waits) if waits else None,
    }


IntervalS = Annotated[float, Query(ge=0.2, le=60, description="seconds between snapshots")]
MaxS = Annotated[float, Query(ge=1, le=300, description="end the stream after this long")]


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def events(request: Request, interval_s: IntervalS = 1.0, max_s: MaxS = 30.0) -> Any:
    """Server-sent events: a ``snapshot`` of the queue every ``interval_s`` seconds (the first
    at once), for the dashboard; the stream ends after ``max_s`` seconds."""
    queue: JobQueue = request.app.state.queue
    return StreamingResponse(
        _stream(request, queue, interval_s, max_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request, queue: JobQueue, interval_s: float, max_s: float
) -> AsyncIterator[str]:
    ends = time.monotonic() + max_s
    yield f"retry: {round(interval_s * 1000)}\n\n"
    while time.monotonic() < ends and not await request.is_disconnected():
        try:
            state = await run_in_threadpool(snapshot, queue)
        except redis.RedisError:  # say so and keep the stream: Redis may come back
            yield 'event: unavailable\ndata: {"detail":"Redis unreachable"}\n\n'
        else:
            yield f"event: snapshot\ndata: {json.dumps(state, separators=(',', ':'))}\n\n"
        await asyncio.sleep(interval_s)
