"""Controlling the queue over HTTP: ``POST /pause`` and ``POST /resume``.

Paused, workers keep their leases (jobs running finish and are settled) and start nothing
new; resume wakes them. Both are idempotent: pausing a paused queue is harmless, and the
answer says what it was.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from jobsim.api.guard import known_query_only
from jobsim.queue import JobQueue


class PauseState(BaseModel):
    """Whether the queue is paused now, and whether it was before this call."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"paused": True, "was_paused": False}]}
    )

    paused: bool = Field(description="paused now: workers start nothing new")
    was_paused: bool = Field(description="paused before this call")


async def _queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.queue
    return queue


QueueDep = Annotated[JobQueue, Depends(_queue)]

router = APIRouter(dependencies=[Depends(known_query_only)])
"""The control routes; :func:`jobsim.api.app.create_app` includes them."""


@router.post("/pause", response_model=PauseState, tags=["queue"])
def pause(queue: QueueDep) -> PauseState:
    """Pause the queue: workers keep their leases and start nothing new."""
    return PauseState(paused=True, was_paused=queue.pause())


@router.post("/resume", response_model=PauseState, tags=["queue"])
def resume(queue: QueueDep) -> PauseState:
    """Resume a paused queue; its idle workers wake at once."""
    return PauseState(paused=False, was_paused=queue.resume())
