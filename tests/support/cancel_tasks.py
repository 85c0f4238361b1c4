"""Tasks for the cancel tests, importable by worker processes: one that stops when its job
is cancelled, one that ignores it."""

from __future__ import annotations

import time
from typing import Any

import jobsim
from jobsim.tasks import JobContext


@jobsim.task("cancel_coop")
def cooperative(payload: dict[str, Any], ctx: JobContext) -> str:
    """Sleep in small steps for up to ``seconds``, stopping as soon as the job is cancelled."""
    deadline = time.monotonic() + payload["seconds"]
    while time.monotonic() < deadline:
        ctx.sleep(0.05)
        ctx.raise_if_cancelled()
    return "finished"


@jobsim.task("cancel_stubborn")
def stubborn(payload: dict[str, Any]) -> str:
    """Sleep ``seconds`` whatever happens."""
    time.sleep(payload["seconds"])
    return "finished"
