"""The built-in tasks, shared by the simulator, the HTTP API and the tests.

- ``noop`` ``{}``: nothing (measures queue overhead);
- ``sleep`` ``{"seconds"}``: sleeps;
- ``flaky`` ``{"fail_probability", "seconds", "seed"?}``: sleeps, then fails with the given
  probability;
- ``fail`` ``{"times"?, "permanent"?}``: fails its first ``times`` attempts (default: all);
- ``crash`` ``{"times"?, "seconds"?}``: kills its worker on its first ``times`` attempts.

Random draws in ``flaky`` come from a generator seeded by the job id, the attempt number and
an optional payload ``seed``, so the same job fails on the same attempts on any worker.
"""

from __future__ import annotations

import os
import random
import signal
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobsim.errors import PermanentError
from jobsim.tasks import AbandonJob, JobContext, SimulatedFailure, task


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


class SleepPayload(_Payload):
    seconds: float = Field(ge=0, le=3600)


class FlakyPayload(_Payload):
    fail_probability: float = Field(ge=0, le=1)
    seconds: float = Field(default=0.0, ge=0, le=3600)
    seed: int = 0


class FailPayload(_Payload):
    permanent: bool = False
    times: int | None = Field(default=None, ge=0)


@task("noop")
def _noop(payload: Any) -> None:
    """Do nothing: measures the queue's own overhead."""


@task("sleep", payload_model=SleepPayload)
def _sleep(payload: dict[str, Any]) -> None:
    """Sleep ``payload["seconds"]``."""
    time.sleep(float(payload["seconds"]))


@task("flaky", payload_model=FlakyPayload)
def _flaky(payload: dict[str, Any], ctx: JobContext) -> None:
    """Sleep ``seconds``, then fail with probability ``fail_probability``.

    The draw is seeded by (payload ``seed``, job id, attempt), so it is reproducible.
    """
    rng = random.Random(f"{payload.get('seed', 0)}:{ctx.job_id}:{ctx.attempt}")
    failed = rng.random() < float(payload["fail_probability"])
    seconds = float(payload.get("seconds", 0.0))
    if seconds:
        time.sleep(seconds)
    if failed:
        raise SimulatedFailure(f"flaky failure on attempt {ctx.attempt}")


@task("fail", payload_model=FailPayload)
def _fail(payload: dict[str, Any] | None, ctx: JobContext) -> None:
    """Raise on the first ``times`` attempts (default: every attempt), then succeed.

    The error is retryable, or a :class:`PermanentError` if ``permanent``.
    """
    payload = payload or {}
    times = payload.get("times")
    if times is not None and ctx.attempt > int(times):
        return
    if payload.get("permanent"):
        raise PermanentError("task 'fail' failed permanently")
    raise SimulatedFailure("task 'fail' always fails")


class CrashPayload(_Payload):
    times: int | None = Field(default=None, ge=0)
    seconds: float = Field(default=0.0, ge=0, le=3600)


@task("crash", payload_model=CrashPayload)
def _crash(payload: dict[str, Any] | None, ctx: JobContext) -> None:
    """Kill the worker running it on its first ``times`` attempts (default: every attempt).

    A process worker is killed with SIGKILL; a thread worker abandons the lease, as if the
    thread had died. After ``seconds`` of work. Later attempts succeed.
    """
    payload = payload or {}
    times = payload.get("times")
    if times is not None and ctx.attempt > int(times):
        return
    time.sleep(float(payload.get("seconds", 0.0)))
    if ctx.in_process_worker:
        os.kill(os.getpid(), signal.SIGKILL)
    raise AbandonJob(ctx.job_id)
