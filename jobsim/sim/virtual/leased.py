"""The virtual backend's engine for what takes leases to model (worker crashes, poison
``crash``, ``job_timeout_s``, Redis faults) and for the queue features (limits, delays,
queue pauses, cancels). It also models everything :mod:`~jobsim.sim.virtual.engine` does,
the same way (a test pins the two equal where both apply), with one event heap, so slower.

The semantics are the thread pool's (``mode="thread"``), each listed with the code it
mirrors in docs/virtual.md: leases and heartbeats, poison ``crash`` (the lease expires),
worker crashes (the result thrown away), expiries given back by a ``DEQUEUE``, timeouts
(the late result fenced), Redis pauses (every transition held), restarts and drops; limits
(a lease takes a token and a slot, :mod:`~jobsim.sim.virtual.limits`; a slot freed by a
worker's own ack goes to that worker), delayed jobs (promoted by a ``DEQUEUE`` after the
due retries), queue pauses (no lease) and cancels (at once unless running; a running job
ends cancelled with its attempt, or when the pool takes it back after ``grace_s``).
"""

from __future__ import annotations

import heapq
import math
import random

from jobsim.config import Lease, QueueConfig
from jobsim.pool_settings import PoolSettings
from jobsim.sim.faults import FaultPlan
from jobsim.sim.job import job_id
from jobsim.sim.setup import Setup
from jobsim.sim.virtual.engine import INF, Draws, attempt_rule
from jobsim.sim.virtual.limits import gate_for
from jobsim.sim.virtual.trace import MAX_SAMPLES, Trace, sample_period
from jobsim.sim.workload import Workload

# event kinds, in the order events at one instant are taken (as the main loop takes them)
(END, DUE, ARRIVE, EXPIRE, TIMEOUT, CRASH, PAUSE, RESTART, DROP, SCHED, QPAUSE, QRESUME, WAKE,
 CANCEL, TAKEBACK) = range(15)  # fmt: skip
HELD = (END, DUE, ARRIVE, EXPIRE, TIMEOUT, SCHED, WAKE, CANCEL, TAKEBACK)  # a Redis pause
EXPIRED_ERROR = "lease expired on attempt {n}"
TIMEOUT_ERROR = (
    "TimeoutError: job ran longer than {s:g} s; the thread was left running; its result "
    "will be fenced"
)
FAULTS = {
    "crash": CRASH,
    "drop": DROP,
    "pause": PAUSE,
    "restart": RESTART,
    "queue_pause": QPAUSE,
    "resume": QRESUME,
    "cancel": CANCEL,
}
DETAIL = {
    CRASH: "a busy worker loses its running job's result",
    DROP: "connections killed (every call is replay-safe: nothing changes)",
    RESTART: "restarted",
}


def simulate_leased(  # noqa: C901  (one event loop, its cases side by side)
    workload: Workload, draws: Draws, faults: FaultPlan, setup: Setup
) -> Trace:
    """Run the event loop in model seconds and return its :class:`Trace`."""
    arrivals_np, services_np, priorities_np = draws
    arrivals, services = arrivals_np.tolist(), services_np.tolist()
    n, c = len(arrivals), setup.workers
    penalty = (priorities_np.astype(float) * QueueConfig(aging_s=setup.aging_s).band_us).tolist()
    us_per_model_s = 1e6  # the queue's clock, in model µs
    max_attempts = workload.max_retries + 1
    policy = setup.retry
    no_backoff = policy.kind == "fixed" and policy.base_s == 0.0
    lease = Lease(duration_s=setup.lease_s)
    lease_m, beat_m = lease.duration_s, lease.heartbeat_every_s
    timeout_m = setup.job_timeout_s
    grace_m = PoolSettings().grace_s / workload.time_scale  # the pool's default, wall s
    rule = attempt_rule(workload, faults, services)
    crash_poison = {j for j, mode in faults.poison.items() if mode == "crash"}
    rngs = [random.Random(f"{workload.seed}:{w}") for w in range(c)]
    supervisor = random.Random(f"{workload.seed}:supervisor")  # draws a timeout's backoff
    chooser = random.Random(f"{faults.seed}:injector")  # as the injector picks its victim
    restart = faults.redis_restart
    gate = gate_for(setup.rate_limit, setup.concurrency_limit)
    delays = None if workload.delay is None else workload.delays().tolist()  # type: ignore[union-attr]

    trace = Trace(outcome=[], redeliveries=[0] * n, fenced=[0] * n, submitted=list(arrivals))
    trace.finished = [INF] * n
    outcome: list[str] = trace.outcome  # type: ignore[assignment]
    redeliveries: list[int] = trace.redeliveries  # type: ignore[assignment]
    fenced: list[int] = trace.fenced  # type: ignore[assignment]
    submitted: list[float] = trace.submitted  # type: ignore[assignment]
    attempts = [0] * n
    previous_s: list[float | None] = [None] * n
    entered = [False] * n  # submitted (a pause may hold a submit)
    held = [0] * n  # the attempt whose lease the job is under; 0: none
    cancelling = [False] * n  # its cancel was requested while it was processing
    rows: dict[tuple[int, int], int] = {}  # (job, attempt) -> trace row
    whys: list[str | None] = []  # per trace row: why the attempt fails (None: it succeeds)
    planned_end: list[float] = []  # per trace row: when the worker ends it
    ready: list[tuple[float, int]] = []
    free = [(0.0, w) for w in range(c)]
    running: list[int | None] = [None] * c
    doomed = [False] * c  # a crash will throw this worker's running result away
    due_waiting: list[int] = []  # due retries no DEQUEUE has promoted yet (all busy)
    sched_waiting: list[int] = []  # due scheduled jobs no DEQUEUE has promoted yet
    expired_waiting: list[tuple[int, int]] = []  # expired leases no DEQUEUE has seen yet
    crash_waiting = 0  # crashes that found no busy worker: the next dispatch takes them
    events: list[tuple[float, int, int, int, tuple[int, ...]]] = []
    order = 0

    def push(t: float, kind: int, key: int, *data: int) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (t, kind, key, order, data))

    for j, t in enumerate(arrivals):
        push(t, ARRIVE, j, j)
    horizon = arrivals[-1] if n else 0.0
    for at, what, arg in faults.timeline(horizon, workload.seed):
        push(at, FAULTS[what], 0, round(arg * 1e9))  # a pause's model ns; a cancel's job
    seq = -INF
    paused_until = -INF
    queue_paused = False
    wake_at = -INF  # the token wake-up already pushed
    in_system = 0
    period = sample_period(horizon, math.fsum(services), c)
    next_sample = 0.0

    def enqueue(j: int, t: float) -> None:
        nonlocal seq
        x = t * us_per_model_s
        seq = x if x > seq + 1 else seq + 1
        heapq.heappush(ready, (seq - penalty[j], j))

    def finish(j: int, t: float, dead: bool) -> None:
        nonlocal in_system
        held[j] = 0
        trace.finished[j] = t
        in_system -= 1
        if dead:
            trace.dead.add(j)

    def settle(j: int, t: float, how: str, error: str | None, now: float | None = None) -> bool:
        """The lease of ``j`` ended at ``t`` (its attempt's end), seen by Redis at ``now``;
        True when the job ended cancelled instead (its cancel was requested)."""
        if gate is not None:  # the lease ends: its slot comes back (once per lease)
            gate.free()
        a = rows[j, held[j]]
        if cancelling[j]:
            trace.end[a], outcome[a], trace.error[a] = t, "cancelled", None
            finish(j, t if now is None else now, dead=False)
            trace.cancelled.add(j)
            return True
        trace.end[a], outcome[a], trace.error[a] = t, how, error
        return False

    def give_back(j: int, t: float, how: str, error: str) -> None:
        if settle(j, t, how, error):
            return
        if attempts[j] >= max_attempts:
            finish(j, t, dead=True)
            return
        held[j] = 0
        redeliveries[j] += 1
        enqueue(j, t)

    def deadline_after(j: int, k: int, stopped: float) -> float:
        """When the lease of attempt k of job j expires, its heartbeat stopped at `stopped`."""
        taken = trace.start[rows[j, k]]
        beat = math.floor(stopped / beat_m) * beat_m
        return (beat if beat > taken else taken) + lease_m

    def admits(now: float) -> bool:
        """Whether a lease may start now; if a token is missing, wake a worker when it comes."""
        nonlocal wake_at
        if paused_until > now or queue_paused:
            return False
        if gate is None:
            return True
        if not gate.cap and now < wake_at:  # only time opens a rate-only gate: not yet
            return False
        if gate.room(now) >= 1:
            return True
        at = gate.next_token(now)
        if at < INF and at != wake_at:
            wake_at = at
            push(at, WAKE, 0)
        return False

    def dispatch(now: float) -> None:
        while free and ready and (gate is None or gate.room(now) >= 1):
            lease_to(heapq.heappop(free)[1], now)

    def lease_to(w: int, now: float) -> None:
        """Worker ``w`` leases the best ready job at ``now``."""
        nonlocal crash_waiting
        j = heapq.heappop(ready)[1]
        if gate is not None:
            gate.take(now)
        k = attempts[j] = attempts[j] + 1
        held[j] = k
        rows[j, k] = len(trace.job)
        trace.job.append(j)
        trace.number.append(k)
        trace.worker.append(w)
        trace.start.append(now)
        trace.end.append(now)
        trace.error.append(None)
        outcome.append("processing")
        if j in crash_poison:  # the task abandons it: the worker is free at once
            whys.append(None)
            planned_end.append(now)
            heapq.heappush(free, (now, w))
            push(now + lease_m, EXPIRE, j, j, k)
            return
        s, why = rule(j, k, w, now) if rule is not None else (services[j], None)
        whys.append(why)
        planned_end.append(now + s)
        running[w] = j
        push(now + s, END, w, w, j, k)
        if timeout_m is not None:
            push(now + timeout_m, TIMEOUT, j, j, k)
        if crash_waiting:
            crash_waiting -= 1
            doomed[w] = True

    def on_end(t: float, w: int, j: int, k: int) -> None:
        running[w] = None
        heapq.heappush(free, (t, w))
        a = rows[j, k]
        why = whys[a]
        if why is not None:  # the worker draws its backoff before it learns of a fence
            delay = policy.delay_s(k, previous_s=previous_s[j], rng=rngs[w])
            previous_s[j] = round(delay * 1e6) / 1e6
        if doomed[w]:
            doomed[w] = False
            trace.discarded.add(j)
            if held[j] == k:
                push(deadline_after(j, k, planned_end[a]), EXPIRE, j, j, k)
            return
        if held[j] != k:  # its lease was given back: the late result is fenced
            if j not in trace.lost:
                fenced[j] += 1
            return
        end = planned_end[a]  # the worker's own end time, even if a pause held the ack
        if why is None:
            if not settle(j, end, "completed", None, t):
                finish(j, t, dead=False)
        elif not settle(j, end, "retry" if k < max_attempts else "failed", why, t):
            retry_or_dead(j, t, k, due_now=due_waiting)
        housekeeping(t)
        if gate is not None and ready and admits(t):  # its own DEQUEUE leases first
            free.remove((t, w))
            heapq.heapify(free)
            lease_to(w, t)

    def housekeeping(t: float) -> None:
        """What a DEQUEUE does before it leases: promote the due retries, then give back
        the expired leases."""
        for j in due_waiting:
            if alive(j):
                enqueue(j, t)
        due_waiting.clear()
        for j in sched_waiting:
            if alive(j):
                enqueue(j, t)
        sched_waiting.clear()
        for j, k in expired_waiting:
            if held[j] == k:
                give_back(j, t, "expired", EXPIRED_ERROR.format(n=k))
        expired_waiting.clear()

    def retry_or_dead(j: int, t: float, k: int, due_now: list[int] | None = None) -> None:
        """A failed attempt k: retried after the job's backoff, or dead-lettered. A retry
        due at once joins ``due_now`` (the caller's DEQUEUE promotes it), or comes due now."""
        if k >= max_attempts:
            finish(j, t, dead=True)
            return
        held[j] = 0
        if no_backoff and due_now is not None:
            due_now.append(j)
        elif no_backoff:
            push(t, DUE, order + 1, j)
        else:
            push(t + previous_s[j], DUE, order + 1, j)  # type: ignore[operator]

    def alive(j: int) -> bool:
        return j not in trace.lost and j not in trace.cancelled

    def cancel(j: int, t: float) -> str:
        """``JobQueue.cancel`` of job ``j`` at ``t``: what the injector would report."""
        if not entered[j] or j in trace.lost:
            return f"not applied: {job_id(j)} is not submitted yet"
        if trace.finished[j] != INF and j not in trace.cancelled:
            status = "failed" if j in trace.dead else "completed"
            return f"not applied: {job_id(j)} is already {status}"
        if held[j] > 0:  # processing: the worker learns at its next heartbeat
            if not cancelling[j]:
                cancelling[j] = True
                push(math.ceil(t / beat_m) * beat_m + grace_m, TAKEBACK, j, j, held[j])
        elif j not in trace.cancelled:  # scheduled, queued or retrying: cancelled at once
            ready[:] = [(x, i) for x, i in ready if i != j]
            heapq.heapify(ready)
            finish(j, t, dead=False)
            trace.cancelled.add(j)
        return f"cancel of {job_id(j)} requested"

    def lose_everything(t: float) -> None:
        nonlocal in_system, gate, queue_paused
        gate, queue_paused = None, False  # the limits table and the pause flag are gone too
        for j in range(n):
            if entered[j] and j not in trace.lost:
                trace.lost.add(j)
                if trace.finished[j] == INF:
                    in_system -= 1
                held[j] = -1  # nothing holds it: acks and expiries are stale
        ready[:] = [(s, j) for s, j in ready if j not in trace.lost]
        heapq.heapify(ready)

    now = 0.0
    while True:
        t = events[0][0] if events else INF
        if t > now:
            if free and ready and admits(now):
                dispatch(now)
                continue
            if t == INF:
                break
            while next_sample < t:
                trace.samples.append((next_sample, in_system))
                next_sample += period
                if len(trace.samples) >= MAX_SAMPLES:
                    trace.samples = trace.samples[::2]
                    period *= 2
            now = t
        _, kind, key, _, data = heapq.heappop(events)
        if t < paused_until and kind in HELD:
            push(paused_until, kind, key, *data)  # Redis holds the call until the pause ends
            continue
        if kind == END:
            on_end(t, *data)
        elif kind == ARRIVE:
            submitted[key] = t
            entered[key] = True
            in_system += 1
            if delays is not None and delays[key] > 0:  # scheduled: due after its delay
                push(t + delays[key], SCHED, key, key)
            else:
                enqueue(key, t)
        elif kind == SCHED:
            if not free:  # no idle worker to wake: the next DEQUEUE promotes it
                sched_waiting.append(key)
            elif alive(key):
                enqueue(key, t)
        elif kind == WAKE:
            pass  # a token came: the loop's next dispatch leases, if the gate admits
        elif kind in (QPAUSE, QRESUME):
            queue_paused = kind == QPAUSE
            what = f"queue paused for {data[0] / 1e9:g} model s" if queue_paused else "resumed"
            trace.events.append((t, "queue_pause" if queue_paused else "resume", what))
        elif kind == DUE:
            if not free:  # no idle worker to wake: the next DEQUEUE (a job's end) promotes it
                due_waiting.append(data[0])
            elif alive(data[0]):
                enqueue(data[0], t)
        elif kind == EXPIRE:
            j, k = data
            if not free:
                expired_waiting.append((j, k))
            elif held[j] == k:
                give_back(j, t, "expired", EXPIRED_ERROR.format(n=k))
        elif kind == TIMEOUT:
            j, k = data
            if held[j] == k:
                delay = policy.delay_s(k, previous_s=previous_s[j], rng=supervisor)
                previous_s[j] = round(delay * 1e6) / 1e6
                if not settle(j, t, "timeout", TIMEOUT_ERROR.format(s=setup.job_timeout_s)):
                    retry_or_dead(j, t, k)
        elif kind == TAKEBACK:  # still running past the grace: the pool takes the lease back
            j, k = data
            if held[j] == k and j in running:
                settle(j, t, "cancelled", None)
        elif kind == CANCEL:
            trace.events.append((t, "cancel", cancel(data[0] // 10**9, t)))
        elif kind == CRASH:
            busy = [w for w in range(c) if running[w] is not None and not doomed[w]]
            if busy:
                doomed[chooser.choice(busy)] = True
            else:
                crash_waiting += 1
            trace.events.append((t, "crash", DETAIL[CRASH]))
        elif kind == PAUSE:
            paused_until = max(paused_until, t + data[0] / 1e9)
            trace.events.append((t, "pause", f"paused {data[0] / 1e9:g} model s"))
        elif kind == RESTART and restart is not None:
            if restart.persistence == "none":
                lose_everything(t)
            trace.events.append((t, "restart", f"restarted ({restart.persistence})"))
        else:
            trace.events.append((t, "drop", DETAIL[DROP]))
    trace.samples.append((now, in_system))
    for j in trace.lost:
        trace.finished[j] = math.nan
    return trace
