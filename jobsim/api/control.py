"""Controlling jobs and the queue over HTTP: ``GET /status/{task_id}`` (with an optional
long poll, ``?wait_s=``), ``POST /jobs/{task_id}/cancel``, ``POST /pause`` and
``POST /resume``.

The long poll blocks in :meth:`jobsim.JobQueue.wait` (no polling: the job's terminal
transition wakes it), at most :data:`MAX_HTTP_WAIT_S`; the route is a plain ``def``, so it
runs in the server's thread pool and never blocks the event loop. When the wait runs out the
answer is the job's status then (200), as without ``wait_s``.

Paused, workers keep their leases (jobs running finish and are settled) and start nothing
new; resume wakes them. Both are idempotent: pausing a paused queue is harmless, and the
answer says what it was.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from jobsim.api.errors import Responses, error_doc
from jobsim.api.guard import known_query_only
from jobsim.api.views import JobView
from jobsim.errors import WaitTimeoutError
from jobsim.models import JobStatus
from jobsim.queue import JobQueue

MAX_HTTP_WAIT_S = 30.0
"""Longest long poll of ``GET /status/{task_id}?wait_s=`` (below common proxy timeouts)."""


class PauseState(BaseModel):
    """Whether the queue is paused now, and whether it was before this call."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"paused": True, "was_paused": False}]}
    )

    paused: bool = Field(description="paused now: workers start nothing new")
    was_paused: bool = Field(description="paused before this call")


class CancelAnswer(BaseModel):
    """A cancel's answer: the job is cancelled, or will be once its running attempt ends."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"task_id": "a1", "cancelled": True, "status": "cancelled"}]
        }
    )

    task_id: str
    cancelled: bool = Field(description="always true: cancelled, or will be")
    status: JobStatus = Field(description="its status now (`processing` until a running job stops)")


async def _queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.queue
    return queue


QueueDep = Annotated[JobQueue, Depends(_queue)]
TaskId = Annotated[str, Path(description="the id `POST /submit` answered")]
WaitS = Annotated[
    float,
    Query(
        ge=0,
        le=MAX_HTTP_WAIT_S,
        description=f"wait up to this many seconds (at most {MAX_HTTP_WAIT_S:g}) for the job "
        "to finish before answering; 0 answers at once",
    ),
]
_NOT_FOUND: Responses = {404: error_doc(404, "no job with this id")}

router = APIRouter(dependencies=[Depends(known_query_only)])
"""The control routes; :func:`jobsim.api.app.create_app` includes them."""


@router.get("/status/{task_id}", response_model=JobView, tags=["jobs"], responses=_NOT_FOUND)
def status(task_id: TaskId, queue: QueueDep, wait_s: WaitS = 0.0) -> JobView:
    """A job's status, attempts, retries left, timestamps, last error and result; with
    `wait_s`, once it is finished (or when `wait_s` runs out)."""
    if wait_s > 0:
        try:
            return JobView.of(queue.wait(task_id, timeout_s=wait_s))
        except WaitTimeoutError:
            pass  # not finished yet: answer where it is now
    return JobView.of(queue.status(task_id))


@router.post(
    "/jobs/{task_id}/cancel",
    response_model=CancelAnswer,
    tags=["jobs"],
    responses={**_NOT_FOUND, 409: error_doc(409, "the job already completed or failed")},
)
def cancel(task_id: TaskId, queue: QueueDep) -> CancelAnswer:
    """Cancel a job: a scheduled, queued or retrying one at once; a running one is asked to
    stop and ends `cancelled`. A finished job cannot be cancelled (409)."""
    queue.cancel(task_id)
    return CancelAnswer(task_id=task_id, cancelled=True, status=queue.status(task_id).status)


@router.post("/pause", response_model=PauseState, tags=["queue"])
def pause(queue: QueueDep) -> PauseState:
    """Pause the queue: workers keep their leases and start nothing new."""
    return PauseState(paused=True, was_paused=queue.pause())


@router.post("/resume", response_model=PauseState, tags=["queue"])
def resume(queue: QueueDep) -> PauseState:
    """Resume a paused queue; its idle workers wake at once."""
    return PauseState(paused=False, was_paused=queue.resume())
