"""The measurements of ``jobsim bench``, on a private redis-server.

Every drain throughput comes from jobsim's own timing capture (first attempt start to last
finish, Redis ``TIME``), so worker start-up is not counted. Each figure is measured
``repeats`` times (min, median and max go to ``figures``; the tables show medians); the
machine may be shared and noisy, so compare figures normalised to the round-trip rate
measured in the same run (:mod:`jobsim.bench.figures`).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import redis

from jobsim.bench.figures import FORMAT, REFERENCE, Figures
from jobsim.bench.http import http_available, http_submit_rates
from jobsim.bench.plan import BenchPlan, PeerAdapter
from jobsim.config import QueueConfig, Retention
from jobsim.connection import connect
from jobsim.localredis import LocalRedis
from jobsim.pool import Mode, WorkerPool
from jobsim.queue import JobQueue
from jobsim.requests import JobRequest
from jobsim.retry import RetryPolicy

Progress = Callable[[str], None]


def run_bench(
    plan: BenchPlan, *, peers: Sequence[PeerAdapter] = (), progress: Progress = print
) -> dict[str, Any]:
    """Start a private redis-server, measure everything in ``plan``, return the results.

    Args:
        plan: what to measure and how much.
        peers: adapters of peer queues to measure too when ``plan.peers`` is set (the
            repository's ``python -m benchmarks.run --peers`` passes the installed ones).
        progress: called with a line per step.
    """
    with LocalRedis() as server:
        info = _info(connect(server.url), "server")
        results: dict[str, Any] = {
            "format": FORMAT,
            "plan": asdict(plan),
            "machine": {"cpus": os.cpu_count(), "redis_version": info.get("redis_version")},
        }
        results["jobsim"] = _measure_jobsim(server.url, plan, progress)
        if plan.peers:
            results["peers"] = _measure_peers(server.url, plan, peers, progress)
    return results


def _measure_jobsim(url: str, plan: BenchPlan, progress: Progress) -> dict[str, Any]:
    client = connect(url)
    fig = Figures(plan.repeats)
    out: dict[str, Any] = {}
    n = plan.single_submits
    payload = plan.payload()
    progress("round trips (the reference) and submits")
    out["ping_per_s"] = fig.rate(REFERENCE, n, lambda: _repeat(client.ping, n))
    with _scratch_queue(client) as queue:
        out["submit_per_s"] = fig.rate(
            "submit_per_s", n, lambda: _repeat(lambda: queue.submit("noop", payload), n)
        )
    with _scratch_queue(client) as queue:
        batch = [JobRequest("noop", payload)] * plan.batch_jobs
        out["submit_batch_per_s"] = fig.rate(
            "submit_batch_per_s", plan.batch_jobs, lambda: queue.submit_many(batch)
        )
    noop = [JobRequest("noop", payload)] * plan.jobs
    out["drain_noop_per_s"] = _drains(fig, "drain_noop", url, plan, noop, progress)
    if plan.task_mix:
        mix = plan.requests(plan.jobs)
        out["drain_mix_per_s"] = _drains(fig, "drain_mix", url, plan, mix, progress)
    progress("retry-once drain, 4 threads")
    once = [JobRequest("fail", {"times": 1})] * plan.jobs
    out["drain_retry_once_4_per_s"] = fig.measure(
        "drain_retry_once_4_per_s", lambda: drain_rate(url, once, 4, "thread")
    )
    progress("timing capture off vs on, 4 threads")
    off = fig.measure(
        "drain_noop_4_no_attempt_log_per_s",
        lambda: drain_rate(url, noop, 4, "thread", plan.queue_config(attempt_log=False)),
    )
    out["drain_noop_4_no_attempt_log_per_s"] = off
    out["attempt_log_overhead"] = 1 - out["drain_noop_per_s"].get("thread:4", off) / off
    progress("submit-to-start latency on an idle pool")
    out["start_latency_ms"] = start_latency_ms(client, plan.latency_samples)
    fig.record("start_latency_p50_ms", [out["start_latency_ms"]["p50"]], unit="ms", better="lower")
    progress("idle CPU")
    out["idle_cpu_percent"] = idle_cpu_percent(client, plan.idle_s)
    progress("Redis memory per job")
    out["memory"] = memory_per_job(client, plan.memory_jobs)
    fig.record(
        "bytes_per_queued_job", [out["memory"]["bytes_per_queued_job"]], unit="B", better="lower"
    )
    if plan.peers and http_available():
        progress("HTTP submit: jobsim serve vs a bare FastAPI endpoint")
        variants = ("no_workers", "worker_process", "threads_in_server")
        http = [
            http_submit_rates(url, plan.http_requests, variants=variants)
            for _ in range(plan.repeats)
        ]
        out["http_submit"] = {k: statistics.median(h[k] for h in http) for k in http[0]}
        fig.record("http_submit_ratio", [h["ratio"] for h in http], unit="x")
        fig.record(
            "http_submit_ratio_with_workers", [h["worker_process_ratio"] for h in http], unit="x"
        )
    out["figures"] = fig.figures
    return out


def _drains(
    fig: Figures,
    prefix: str,
    url: str,
    plan: BenchPlan,
    jobs: list[JobRequest],
    progress: Progress,
) -> dict[str, float]:
    drains: dict[str, float] = {}
    modes: tuple[tuple[Mode, tuple[int, ...]], ...] = (
        ("thread", plan.thread_workers),
        ("process", plan.process_workers),
    )
    for mode, counts in modes:
        for workers in counts:
            progress(f"{prefix.replace('_', ' ')}, {workers} {mode} worker(s)")
            drains[f"{mode}:{workers}"] = fig.measure(
                f"{prefix}_{mode}_{workers}_per_s",
                partial(drain_rate, url, jobs, workers, mode, plan.queue_config()),
            )
    return drains


def drain_rate(
    url: str,
    jobs: list[JobRequest],
    workers: int,
    mode: Mode,
    config: QueueConfig | None = None,
) -> float:
    """Jobs/s draining ``jobs``, submitted first, with ``workers`` workers.

    Timed from the first attempt's start to the last job's finish, both Redis ``TIME``;
    the attempt log is read for that, so with ``config.attempt_log`` off a wall clock is used.
    The default ``config`` retries at once and keeps every record (they are read back).
    """
    client = connect(url)
    config = config or QueueConfig(
        retry=RetryPolicy.immediate(), retention=Retention(max_completed=None, max_age_s=None)
    )
    with _scratch_queue(client, config) as queue:
        ids = queue.submit_many(jobs)
        started = time.perf_counter()
        with WorkerPool(queue, workers, mode):
            queue.wait_until_drained(timeout_s=600)
            wall = time.perf_counter() - started
        if not config.attempt_log:
            return len(jobs) / wall
        first, last = _span(queue, ids)
        return len(jobs) / (last - first)


def _span(queue: JobQueue, ids: list[str]) -> tuple[float, float]:
    first, last = float("inf"), 0.0
    for start in range(0, len(ids), 1000):
        for job in queue.get_many(ids[start : start + 1000]):
            first = min(first, job.attempt_log[0].started_at or first)
            last = max(last, job.finished_at or last)
    return first, last


def start_latency_ms(client: redis.Redis, samples: int) -> dict[str, float]:
    """Submit one job at a time to an idle pool of 4; Redis-time delay until it starts."""
    with _scratch_queue(client) as queue, WorkerPool(queue, 4):
        time.sleep(0.2)
        ids = []
        for _ in range(samples):
            ids.append(queue.submit("noop"))
            queue.wait_until_drained(timeout_s=10)
            time.sleep(0.002)  # let the workers go idle again
        delays = sorted(
            (j.attempt_log[0].started_at or 0.0) - j.submitted_at for j in queue.get_many(ids)
        )
    return {f"p{q}": round(_quantile(delays, q / 100) * 1e3, 3) for q in (50, 90, 99)}


def idle_cpu_percent(client: redis.Redis, seconds: float) -> dict[str, float]:
    """CPU used by idle pools of 4 workers, in percent of one core."""
    out = {}
    with _scratch_queue(client) as queue, WorkerPool(queue, 4):
        time.sleep(0.3)
        before = time.process_time()
        time.sleep(seconds)
        out["thread_pool_4"] = round(100 * (time.process_time() - before) / seconds, 2)
    with _scratch_queue(client) as queue, WorkerPool(queue, 4, "process") as pool:
        _await(lambda: len(queue.workers()) == 4, 30)
        pids = pool.worker_pids()
        before_children = sum(_cpu_s(p) for p in pids)
        before = time.process_time()
        time.sleep(seconds)
        used = sum(_cpu_s(p) for p in pids) - before_children + time.process_time() - before
        out["process_pool_4"] = round(100 * used / seconds, 2)
    return out


def memory_per_job(client: redis.Redis, jobs: int) -> dict[str, float]:
    """Redis memory per queued no-op job; and what a drain leaves with a retention cap."""
    retention = Retention(max_completed=1000)
    with _scratch_queue(client, QueueConfig(retention=retention)) as queue:
        base = int(_info(client, "memory")["used_memory"])
        queue.submit_many([JobRequest("noop")] * jobs)
        queued = int(_info(client, "memory")["used_memory"])
        with WorkerPool(queue, 4):
            queue.wait_until_drained(timeout_s=600)
        drained = int(_info(client, "memory")["used_memory"])
        return {
            "bytes_per_queued_job": round((queued - base) / jobs, 1),
            "bytes_left_after_drain_keep_1000": drained - base,
            "completed_records_kept": queue.stats().completed,
        }


def _measure_peers(
    url: str, plan: BenchPlan, peers: Sequence[PeerAdapter], progress: Progress
) -> dict[str, Any]:
    if not peers:
        progress("peers: none given; run `python -m benchmarks.run --peers` from the repository")
        return {}
    flush = connect(url)
    out: dict[str, Any] = {}
    n = plan.peer_jobs
    for module in peers:
        variants = [(module.NAME, module.drain)]
        if hasattr(module, "drain_forking"):  # RQ: its default worker forks per job
            variants.append((f"{module.NAME} (forking Worker)", module.drain_forking))
        for name, drain in variants:
            runs: list[tuple[str, Callable[[], float | None]]] = [
                ("drain_noop_1_per_s", partial(drain, url, n, 1, "noop")),
                ("drain_noop_4_per_s", partial(drain, url, n, 4, "noop")),
                ("drain_retry_once_4_per_s", partial(drain, url, n, 4, "retry_once")),
            ]
            row: dict[str, Any] = {"note": module.NOTE}
            progress(f"peer {name}: enqueue, alternating with jobsim's submit")
            try:
                ours, theirs = _side_by_side(flush, url, module, plan.single_submits)
                row["jobsim_submit_per_s"], row["enqueue_per_s"] = ours, theirs
            except Exception as exc:
                row["enqueue_per_s"] = None
                row["errors"] = [f"enqueue_per_s: {type(exc).__name__}: {exc}"]
            for key, run in runs:
                progress(f"peer {name}: {key}")
                flush.flushall()
                try:
                    row[key] = run()
                except Exception as exc:  # a peer's failure is reported, not fatal
                    row[key] = None
                    row.setdefault("errors", []).append(f"{key}: {type(exc).__name__}: {exc}")
            out[name] = row
    flush.flushall()
    return out


def _side_by_side(
    client: redis.Redis, url: str, peer: PeerAdapter, n: int, rounds: int = 5
) -> tuple[float, float]:
    """jobsim's single submit and the peer's enqueue, ``n`` each, in alternating blocks (so a
    change in the machine's load hits both); returns both rates."""
    block = max(n // rounds, 1)
    ours = theirs = 0.0
    with _scratch_queue(client) as queue:
        for _ in range(rounds):
            started = time.perf_counter()
            _repeat(lambda: queue.submit("noop"), block)
            ours += time.perf_counter() - started
            theirs += block / peer.enqueue(url, block)
    return block * rounds / ours, block * rounds / theirs


# --- helpers ------------------------------------------------------------------------------


@contextmanager
def _scratch_queue(client: redis.Redis, config: QueueConfig | None = None) -> Iterator[JobQueue]:
    queue = JobQueue(client, f"bench-{uuid.uuid4().hex[:8]}", config)
    try:
        yield queue
    finally:
        queue.delete()


def _info(client: redis.Redis, section: str) -> dict[str, Any]:
    info: Any = client.info(section)
    return dict(info)


def _repeat(fn: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        fn()


def _rate(n: int, fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def _quantile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _await(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
