"""The chaos test's harness: seeded waves of jobs, worker hosts to kill, and an audit of
the queue that trusts nothing but the tasks' own execution log and the public JobQueue API.

The audit does not use :mod:`jobsim.sim`'s checker: it reads every job with
``queue.status(id)`` and the totals with ``queue.stats()``, and compares them with the
lines the tasks wrote at each execution START (see :mod:`tests.support.chaos_tasks`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from jobsim import JobQueue, JobRequest, Lease, QueueConfig, RetryPolicy, WorkerPool
from jobsim.errors import DrainTimeoutError, JobNotFoundError
from jobsim.models import TERMINAL

LEASE_S = 1.5
CONFIG = QueueConfig(
    lease=Lease(duration_s=LEASE_S),
    retry=RetryPolicy(kind="exponential", base_s=0.02, cap_s=0.2),
)
CLI_CONFIG = ["--lease-s", str(LEASE_S), "--retry", "exponential"]
CLI_CONFIG += ["--retry-base-s", "0.02", "--retry-cap-s", "0.2", "--grace-s", "1"]
MAX_RETRIES = (0, 1, 2, 3)
REPO = Path(__file__).resolve().parents[2]


# --- the workload -------------------------------------------------------------------------


class Workload:
    """Seeded waves of chaos jobs with deterministic ids, submitted straight to Redis."""

    def __init__(self, queue: JobQueue, log: Path, seed: int, *, rare_share: float = 0.0):
        self.queue = queue
        self.log = str(log)
        self.seed = seed
        self.rare_share = rare_share
        self.rng = random.Random(f"{seed}:workload")
        self.ids: list[str] = []

    def wave(self, n: int, *, instant: bool = False) -> None:
        """Submit ``n`` more jobs, max_retries drawn from 0..3 and a quarter of the attempts
        failing. An ``instant`` wave does no work; another works up to a tenth of a second
        on most attempts. Alternating the two makes workers lease the slow jobs in batches
        sized for instant ones, so kills find leased jobs waiting behind a running one."""
        requests = []
        for _ in range(n):
            task = "chaos_rare" if self.rng.random() < self.rare_share else "chaos_log"
            payload = {
                "log": self.log,
                "seed": self.seed,
                "sleep_s": 0.1,
                "fast_share": 1.0 if instant else 0.3,
                "fail_p": 0.25,
            }
            job_id = f"c{self.seed}-{len(self.ids) + len(requests):04d}"
            retries = self.rng.choice(MAX_RETRIES)
            priority = self.rng.randint(0, 9)
            requests.append(JobRequest(task, payload, priority, retries, job_id))
        self.ids += self.queue.submit_many(requests)


# --- the audit ----------------------------------------------------------------------------


@dataclass
class Audit:
    """What the queue says happened, beside what the tasks logged, and every violation."""

    jobs: int = 0
    completed: int = 0
    failed: int = 0
    executions: int = 0
    duplicate_starts: int = 0  # starts of a (job, attempt) pair that had already started
    attempts: int = 0
    fenced: int = 0
    redeliveries: int = 0
    unknown_task_attempts: int = 0
    unrun_attempts: Counter[str] = field(default_factory=Counter)  # by the attempt's outcome
    violations: Counter[str] = field(default_factory=Counter)  # by check: jobs violating it
    examples: dict[str, str] = field(default_factory=dict)  # one job per violated check
    events: Counter[str] = field(default_factory=Counter)  # chaos injected (kills, drops)

    def violate(self, check: str, example: str) -> None:
        self.violations[check] += 1
        self.examples.setdefault(check, example)

    def summary(self) -> str:
        lines = [
            f"jobs={self.jobs} completed={self.completed} failed={self.failed} "
            f"attempts={self.attempts} executions={self.executions} "
            f"extra_executions(duplicate job,attempt starts)={self.duplicate_starts} "
            f"fenced={self.fenced} redeliveries={self.redeliveries} "
            f"unknown_task_attempts={self.unknown_task_attempts} "
            f"attempts_charged_without_a_run={sum(self.unrun_attempts.values())} "
            f"{dict(self.unrun_attempts)}",
            f"chaos: {dict(sorted(self.events.items()))}",
        ]
        for check, count in sorted(self.violations.items()):
            lines.append(f"VIOLATED {check}: {count} (e.g. {self.examples[check]})")
        if not self.violations:
            lines.append("all checks hold")
        return "\n".join(lines)


def read_log(log: Path) -> list[tuple[str, int, int, str]]:
    """The START lines: (job id, attempt, pid, worker id)."""
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        job_id, attempt, pid, worker = line.split(" ")
        rows.append((job_id, int(attempt), int(pid), worker))
    return rows


def audit(
    queue: JobQueue, ids: list[str], log: Path, *, drain_timeout_s: float, strict: bool
) -> Audit:
    """Drain, then check every job against the log.

    Checks, exactly: no job lost (every id exists, completed or failed); none stuck (nothing
    queued, processing or retrying); per job, executions <= max_retries + 1 and executions
    <= attempts; a (job, attempt) pair starts twice only as often as the job's fenced and
    redelivered counts allow, and (stricter: the attempt number is the fencing token, which
    neither a redelivery nor a fenced ack reuses) never at all. With ``strict`` (no process
    was killed), also: every attempt charged either ran or met a worker that did not know
    the task.
    """
    result = Audit()
    try:
        queue.wait_until_drained(timeout_s=drain_timeout_s)
    except DrainTimeoutError as exc:
        result.violate("0 stuck (drained in time)", str(exc.active))
    stats = queue.stats()
    if stats.active:
        result.violate("0 stuck (stats.active == 0)", str(stats.by_status()))
    starts = Counter((job_id, attempt) for job_id, attempt, _, _ in read_log(log))
    per_job = Counter[str]()
    for (job_id, _), n in starts.items():
        per_job[job_id] += n
    result.jobs = len(ids)
    result.executions = sum(starts.values())
    for job_id in ids:
        _audit_job(queue, job_id, starts, per_job[job_id], result, strict=strict)
    return result


def _audit_job(
    queue: JobQueue,
    job_id: str,
    starts: Counter[tuple[str, int]],
    executions: int,
    result: Audit,
    *,
    strict: bool,
) -> None:
    try:
        job = queue.status(job_id)
    except JobNotFoundError:
        result.violate("0 lost (record exists)", job_id)
        return
    if job.status not in TERMINAL:
        result.violate("0 lost/stuck (completed or failed)", f"{job_id} is {job.status}")
    result.completed += job.status == "completed"
    result.failed += job.status == "failed"
    result.attempts += job.attempts
    result.fenced += job.fenced
    result.redeliveries += job.redeliveries
    what = (
        f"{job_id}: {executions} runs, attempts={job.attempts} max_retries={job.max_retries} "
        f"fenced={job.fenced} redeliveries={job.redeliveries} status={job.status}"
    )
    if executions > job.max_retries + 1:
        result.violate("executions <= max_retries + 1", what)
    if executions > job.attempts:
        result.violate("executions <= attempts (every run is counted)", what)
    extra = sum(n - 1 for (j, _), n in starts.items() if j == job_id and n > 1)
    result.duplicate_starts += extra
    pairs = sorted(a for (j, a), n in starts.items() if j == job_id and n > 1)
    if extra > job.fenced + job.redeliveries:
        result.violate(
            "no (job, attempt) started twice unaccounted by fenced+redeliveries",
            f"{what}; attempts run twice {pairs}",
        )
    if extra:
        # The fencing token is the attempt number: a redelivery or a fenced ack always moves
        # on to a new one, so one token reaching two workers is never accounted for.
        result.violate("a lease token reaches one worker only", f"{what}; run twice {pairs}")
    for attempt in job.attempt_log:
        if starts[(job_id, attempt.number)]:
            continue
        if "unknown task" in (attempt.error or ""):
            result.unknown_task_attempts += 1
            continue
        result.unrun_attempts[attempt.outcome.value] += 1
        if strict:
            result.violate(
                "no attempt charged without a run (no kills)",
                f"{what}; attempt {attempt.number} {attempt.outcome.value}: {attempt.error}",
            )


# --- processes ----------------------------------------------------------------------------


def send(pid: int, sig: signal.Signals) -> bool:
    """Signal ``pid`` (one of ours); False if it is already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def spawned_children(parent: psutil.Process) -> list[psutil.Process]:
    """``parent``'s multiprocessing worker children (not its resource tracker), by pid."""
    found = []
    for child in parent.children():
        try:
            if "spawn_main" in " ".join(child.cmdline()) and child.is_running():
                found.append(child)
        except psutil.Error:
            continue
    return sorted(found, key=lambda p: p.pid)


def stop_within(pool: WorkerPool, timeout_s: float) -> bool:
    """``pool.stop()``, in a thread; False if it did not return in time (a hung stop)."""
    thread = threading.Thread(target=pool.stop, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive()


class Host:
    """One ``jobsim worker`` command, as on its own machine."""

    def __init__(self, url: str, queue: str, processes: bool, out: Path, name: str) -> None:
        cmd = [sys.executable, "-m", "jobsim", "worker", "--redis", url, "--queue", queue]
        cmd += ["--concurrency", "2", *CLI_CONFIG, "--import", "tests.support.chaos_tasks"]
        if processes:
            cmd.append("--processes")
        self.processes = processes
        self.name = name
        self.killed = False  # SIGKILLed: its children were never told
        self._out = open(out / f"{name}.log", "wb")  # noqa: SIM115 - closed in reap()
        self.popen = subprocess.Popen(cmd, cwd=REPO, stdout=self._out, stderr=subprocess.STDOUT)
        self.known: dict[int, float] = {}  # every descendant seen: pid -> create_time

    def remember(self) -> None:
        """Note the host's descendants now (its children are respawned under new pids)."""
        try:
            for p in psutil.Process(self.popen.pid).children(recursive=True):
                self.known.setdefault(p.pid, p.create_time())
        except psutil.Error:
            pass

    def children(self) -> list[psutil.Process]:
        try:
            return spawned_children(psutil.Process(self.popen.pid))
        except psutil.Error:
            return []

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        self.remember()
        self.killed = self.killed or sig == signal.SIGKILL
        send(self.popen.pid, sig)
        if sig == signal.SIGKILL:
            self.popen.wait(10)

    def survivors(self) -> list[psutil.Process]:
        """Descendants ever seen that still run (the same process: pid and start time)."""
        alive = []
        for pid, created in self.known.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.Error:
                continue
        return alive

    def reap(self, timeout_s: float = 15.0) -> None:
        """Stop gracefully (SIGTERM), SIGKILL after ``timeout_s``, close the output file."""
        if self.alive():
            self.remember()
            send(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
        self._out.close()


def wait_for(predicate, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
