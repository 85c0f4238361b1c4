"""The virtual backend: the queue's semantics in a discrete-event engine (no threads, no
Redis, no wall clock), so a run is exact, reproducible and fast.

It reads the same draws as the real runner (:meth:`Workload.draws`), decides each attempt
with the same code as the simulator's task (:func:`jobsim.sim.job.attempt_failure`), draws
backoffs with the same :class:`~jobsim.retry.RetryPolicy` and the same per-worker seeded
generators, and orders the ready jobs by the queue's own score
(``seq - priority * band_us``, :attr:`jobsim.config.QueueConfig.band_us`). What the real
queue decides in Lua is mirrored here and pinned by the conformance tests
(``tests/test_virtual*.py``); docs/virtual.md lists what is and is not modelled.

Three engines, one semantics: :mod:`~jobsim.sim.virtual.fifo` (one priority, nothing
fails: a recursion), :mod:`~jobsim.sim.virtual.engine` (priorities, retries, per-job
faults) and :mod:`~jobsim.sim.virtual.leased` (leases, crashes, timeouts, Redis pauses and
restarts, and the queue features: rate and concurrency limits, delayed jobs, queue
pauses). Each is used only where the simpler one does not apply, and tests pin that they
agree bit for bit where both do.

Everything here is model seconds: the workload's and the fault plan's times and
:class:`~jobsim.sim.setup.Setup`'s durations (retry delays, aging, leases, the job timeout)
go in as they are, and the frames come out in model seconds, as the real runner's do. The
workload's ``time_scale`` (wall seconds per model second) is read once only: a cancelled
job running on past the pool's grace, which is wall seconds (``PoolSettings.grace_s``), is
taken back ``grace_s / time_scale`` model seconds after its worker heard of the cancel;
otherwise the time scale changes nothing on this backend.

Example:
    >>> from jobsim.sim.workload import Workload
    >>> result = run_virtual(Workload(jobs=100, seed=1), setup=Setup(workers=10))
    >>> result.verdict.completed
    100
"""

from __future__ import annotations

import time
from collections.abc import Callable

from jobsim.errors import InvalidInputError
from jobsim.sim.checker import Verdict
from jobsim.sim.faults import FaultPlan
from jobsim.sim.result import RunResult
from jobsim.sim.setup import Setup
from jobsim.sim.summary import summarize
from jobsim.sim.virtual import engine, fifo, leased
from jobsim.sim.virtual.frames import POOL_ID, frames
from jobsim.sim.virtual.trace import SAMPLES, Trace
from jobsim.sim.workload import Workload

__all__ = [
    "POOL_ID",
    "SAMPLES",
    "needs_leases",
    "process_faults",
    "queue_features",
    "run_virtual",
    "simulate",
    "unsupported",
]


def run_virtual(
    workload: Workload,
    faults: FaultPlan | None = None,
    setup: Setup | None = None,
    *,
    progress: bool | Callable[[int, int], None] = False,
) -> RunResult:
    """Run ``workload`` on the virtual engine: the same :class:`RunResult` as the real queue.

    Every fault kind and setting is modelled with the thread pool's semantics
    (docs/virtual.md says how, and what differs from the real queue).

    Raises:
        InvalidInputError: fewer than one worker, or ``mode="process"`` with a fault whose
            outcome depends on the pool kind (named).
    """
    faults = faults or FaultPlan()
    setup = setup or Setup(backend="virtual")
    if unsupported(faults, setup):
        raise InvalidInputError(
            f"the virtual backend models {', '.join(unsupported(faults, setup))} as a "
            "thread pool sees them; a process pool's supervisor gives the leases back at "
            "once and restarts the process: use mode='thread', or a real backend",
            field="mode",
            value="process",
        )
    if setup.workers < 1:
        raise InvalidInputError("workers must be >= 1", field="workers", value=setup.workers)
    began = time.perf_counter()
    draws = workload.draws()
    trace = simulate(workload, draws, faults, setup)
    jobs, attempts = frames(workload, draws, trace)
    n = workload.jobs
    dead = len(trace.dead)
    lost = len(trace.lost)
    cancelled = len(trace.cancelled)
    verdict = Verdict(
        submitted=n,
        completed=n - dead - lost - cancelled,
        dead_lettered=dead,
        lost=lost,
        unexpected=0,
        misplaced=0,
        stranded=0,
        duplicates=int(jobs["duplicate"].sum()) + len(trace.discarded - trace.lost),
        redelivered=int((jobs["redeliveries"] > 0).sum()),
        lost_ids=tuple(sorted(f"j{j:06d}" for j in trace.lost)),
        cancelled=cancelled,
    )
    wall_s = time.perf_counter() - began
    samples = trace.samples
    applied = [f"{at:g} s {kind}: {d}" for at, kind, d in trace.events]
    summary = summarize(jobs, attempts, verdict, workload, setup, faults, wall_s, samples, applied)
    if callable(progress):
        progress(n, n)
    return RunResult(workload, faults, setup, jobs, attempts, verdict, summary, tuple(trace.events))


def simulate(workload: Workload, draws: engine.Draws, faults: FaultPlan, setup: Setup) -> Trace:
    """The trace of a run, from the simplest engine that models it."""
    features = queue_features(workload, setup)
    if not features and fifo.applies(workload, draws, faults):
        return fifo.simulate_fifo(workload, draws, setup)
    if features or needs_leases(faults, setup):
        return leased.simulate_leased(workload, draws, faults, setup)
    return engine.simulate(workload, draws, faults, setup)


def unsupported(faults: FaultPlan, setup: Setup) -> list[str]:
    """What in ``faults`` and ``setup`` the virtual engine does not model (named), which
    :func:`run_virtual` refuses: only crash-like faults in a process pool (see
    :func:`process_faults`); every fault kind is modelled for a thread pool."""
    return process_faults(faults, setup) if setup.mode == "process" else []


def process_faults(faults: FaultPlan, setup: Setup) -> list[str]:
    """The faults in a plan whose outcome differs between a thread and a process pool."""
    named = []
    if faults.worker_crashes:
        named.append("worker_crashes")
    if any(mode == "crash" for mode in faults.poison.values()):
        named.append("poison 'crash'")
    if setup.job_timeout_s is not None:
        named.append("job_timeout_s")
    if faults.cancels:  # past the grace a process is killed: no late result to fence
        named.append("cancels")
    return named


def queue_features(workload: Workload, setup: Setup) -> list[str]:
    """The queue features a run uses that only the leased engine models (named): a rate
    or concurrency limit, delayed jobs. (Queue pauses are in the fault plan's timeline, so
    :func:`needs_leases` sends them there.)

    Example:
        >>> queue_features(Workload(), Setup(concurrency_limit=2))
        ['concurrency_limit']
    """
    named = []
    if setup.rate_limit is not None:
        named.append("rate_limit")
    if setup.concurrency_limit is not None:
        named.append("concurrency_limit")
    if workload.delay is not None:
        named.append("delay")
    return named


def needs_leases(faults: FaultPlan, setup: Setup) -> bool:
    """Whether a run takes the leased engine: a timed fault, a crash poison or a timeout."""
    return bool(
        faults.timeline(1.0)
        or any(mode == "crash" for mode in faults.poison.values())
        or setup.job_timeout_s is not None
    )
