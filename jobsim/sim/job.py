"""The simulator's job: the ``sim`` task, and how a fault plan's per-job faults are
encoded in its payload (poison, latency spikes, a slow worker).

Importing :mod:`jobsim.sim` registers the task in the default registry; a process worker
imports this module (the task's :attr:`~jobsim.tasks.TaskSpec.module`) to find it. The core
knows nothing of simulated faults: a poison ``crash`` uses the same public means as the
built-in ``crash`` task (SIGKILL in a worker process, :class:`~jobsim.tasks.AbandonJob` in a
thread).

Example:
    >>> from jobsim.tasks import registry
    >>> registry.get("sim").module
    'jobsim.sim.job'
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobsim.sim.faults import FaultPlan
from jobsim.sim.workload import PlannedJob, Workload
from jobsim.tasks import AbandonJob, JobContext, SimulatedFailure, task

TASK = "sim"
"""The name the simulator's job is registered under."""


class SimPayload(BaseModel):
    """The ``sim`` task's payload: wall seconds of work and the per-job faults.

    ``spikes`` are (start, end, extra seconds) windows on the worker's epoch clock, and
    ``outages`` (start, end) windows on it in which every attempt fails.
    """

    model_config = ConfigDict(extra="allow")

    seconds: float = Field(default=0.0, ge=0, le=3600)
    fail_probability: float = Field(default=0.0, ge=0, le=1)
    seed: int = 0
    poison: Literal["fail", "crash", "fail_once"] | None = None
    spikes: list[tuple[float, float, float]] = Field(default_factory=list)
    outages: list[tuple[float, float]] = Field(default_factory=list)
    slow_workers: list[str] = Field(default_factory=list)
    slow_factor: float = Field(default=1.0, ge=1)


def job_payload(
    job: PlannedJob,
    workload: Workload,
    faults: FaultPlan,
    *,
    worker_ids: Sequence[str],
    spike_origin_s: float,
) -> dict[str, Any]:
    """The payload of one planned job, in wall seconds.

    Args:
        job: the planned job.
        workload: its workload (seed, time scale).
        faults: the plan whose per-job faults the payload carries.
        worker_ids: the pool's workers (the first is the slow one, if any).
        spike_origin_s: model time 0 on the workers' epoch clock (``time.time()``), so
            spike windows land where the run's Redis-clock timestamps put them.
    """
    scale = workload.time_scale
    payload: dict[str, Any] = {
        "seconds": job.service_s * scale,
        "fail_probability": fail_probability(job.fail_probability, faults),
        "seed": workload.seed,
    }
    if job.index in faults.poison:
        payload["poison"] = faults.poison[job.index]
    if faults.spikes:
        payload["spikes"] = [
            [spike_origin_s + sp.start_s * scale, spike_origin_s + sp.end_s * scale,
             sp.extra_s * scale]
            for sp in faults.spikes
        ]  # fmt: skip
    if faults.outages:
        payload["outages"] = [
            [spike_origin_s + o.start_s * scale, spike_origin_s + o.end_s * scale]
            for o in faults.outages
        ]
    if faults.slow_worker_factor > 1 and worker_ids:
        payload["slow_workers"] = list(worker_ids[:1])
        payload["slow_factor"] = faults.slow_worker_factor
    return payload


@task(TASK, payload_model=SimPayload)
def run_job(payload: dict[str, Any], ctx: JobContext) -> None:
    """Work for ``seconds`` and fail with ``fail_probability``, plus the payload's per-job
    faults (poison, latency spike, slow worker) and outages (by the attempt's start).

    The failure draw is seeded by (``seed``, job id, attempt), so it is reproducible.
    """
    poison = payload.get("poison")
    if poison == "crash":
        _die(ctx)
    seconds = float(payload.get("seconds", 0.0))
    if ctx.worker_id in payload.get("slow_workers", ()):
        seconds *= float(payload.get("slow_factor", 1.0))
    now = time.time()  # the clock job_payload put the spike and outage windows on
    down = any(start <= now < end for start, end in payload.get("outages", ()))
    seconds += sum(
        float(extra) for start, end, extra in payload.get("spikes", ()) if start <= now <= end
    )
    if seconds:
        time.sleep(seconds)
    failure = attempt_failure(
        ctx.job_id,
        ctx.attempt,
        poison=poison,
        fail_probability=float(payload.get("fail_probability", 0.0)),
        seed=payload.get("seed", 0),
        in_outage=down,
    )
    if failure is not None:
        raise SimulatedFailure(failure)


def job_id(index: int) -> str:
    """The id the simulator gives the job at ``index`` of a plan."""
    return f"j{index:06d}"


def job_ids(n: int) -> list[str]:
    """The ids of a plan of ``n`` jobs: ``[job_id(i) for i in range(n)]``, faster."""
    return [f"j{i:06d}" for i in range(n)]


def fail_probability(job_probability: float, faults: FaultPlan) -> float:
    """The chance an attempt fails: the job's own, or the plan's extra exception."""
    return 1 - (1 - job_probability) * (1 - faults.exception_probability)


def attempt_failure(
    job_id: str,
    attempt: int,
    *,
    poison: str | None,
    fail_probability: float,
    seed: int,
    in_outage: bool = False,
) -> str | None:
    """Why attempt ``attempt`` of ``job_id`` fails (the message the task raises), or None.

    Poison first (``fail`` always, ``fail_once`` on attempt 1), then an outage the attempt
    started in (``in_outage``, decided by the caller's clock), then a draw seeded by
    (``seed``, job id, attempt), so both the real queue and the virtual engine get the same
    answer. (``crash`` poison is not a failure: the task kills its worker before this.)

    Example:
        >>> attempt_failure("j000001", 1, poison="fail_once", fail_probability=0, seed=0)
        'poison job (fail_once) on attempt 1'
    """
    if poison == "fail" or (poison == "fail_once" and attempt == 1):
        return f"poison job ({poison}) on attempt {attempt}"
    if in_outage:
        return f"dependency down (outage) on attempt {attempt}"
    if fail_probability > 0:
        rng = random.Random(f"{seed}:{job_id}:{attempt}")
        if rng.random() < fail_probability:
            return f"simulated failure on attempt {attempt}"
    return None


def _die(ctx: JobContext) -> None:
    """Kill the worker running this job: SIGKILL for a process, a lost lease for a thread."""
    if ctx.in_process_worker:
        os.kill(os.getpid(), signal.SIGKILL)
    raise AbandonJob(ctx.job_id)
