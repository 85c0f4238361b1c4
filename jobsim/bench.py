"""``jobsim bench``: measure jobsim, and installed peer queues, on a private redis-server.

Every throughput comes from jobsim's own timing capture (first attempt start to last
finish, Redis ``TIME``), so worker start-up is not counted. Results are medians of
``repeats`` runs; the machine is shared and noisy, so compare ratios from one run.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import redis

from jobsim.config import QueueConfig, Retention
from jobsim.connection import connect
from jobsim.localredis import LocalRedis
from jobsim.pool import Mode, WorkerPool
from jobsim.queue import JobQueue
from jobsim.requests import JobRequest
from jobsim.retry import RetryPolicy

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class BenchPlan:
    """What to measure, and how much.

    Example:
        >>> BenchPlan.quick().jobs
        500
    """

    jobs: int = 20_000
    single_submits: int = 3_000
    batch_jobs: int = 50_000
    thread_workers: tuple[int, ...] = (1, 2, 4, 8)
    process_workers: tuple[int, ...] = (1, 2, 4)
    latency_samples: int = 300
    idle_s: float = 2.0
    memory_jobs: int = 20_000
    repeats: int = 3
    peer_jobs: int = 5_000
    peers: bool = False

    @classmethod
    def quick(cls) -> BenchPlan:
        """A smoke run of a few seconds: every measurement, tiny sizes, no peers."""
        return cls(
            jobs=500,
            single_submits=200,
            batch_jobs=2_000,
            thread_workers=(1, 4),
            process_workers=(2,),
            latency_samples=20,
            idle_s=0.5,
            memory_jobs=1_000,
            repeats=1,
        )


class PeerAdapter(Protocol):
    """A peer job queue measured beside jobsim (see ``benchmarks/peers`` in the repository,
    which holds one adapter per library and documents the protocol in full)."""

    NAME: str
    NOTE: str

    def enqueue(self, url: str, n: int) -> float: ...
    def drain(self, url: str, n: int, workers: int, scenario: str) -> float | None: ...


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
            "plan": asdict(plan),
            "machine": {"cpus": os.cpu_count(), "redis_version": info.get("redis_version")},
        }
        results["jobsim"] = _measure_jobsim(server.url, plan, progress)
        if plan.peers:
            results["peers"] = _measure_peers(server.url, plan, peers, progress)
    return results


def _measure_jobsim(url: str, plan: BenchPlan, progress: Progress) -> dict[str, Any]:
    client = connect(url)
    out: dict[str, Any] = {}
    progress("round trips and submits")
    out["ping_per_s"] = _rate(
        plan.single_submits, lambda: _repeat(client.ping, plan.single_submits)
    )
    with _scratch_queue(client) as queue:
        out["submit_per_s"] = _rate(
            plan.single_submits, lambda: _repeat(lambda: queue.submit("noop"), plan.single_submits)
        )
    with _scratch_queue(client) as queue:
        batch = [JobRequest("noop")] * plan.batch_jobs
        out["submit_batch_per_s"] = _rate(plan.batch_jobs, lambda: queue.submit_many(batch))
    drains: dict[str, float] = {}
    modes: tuple[tuple[Mode, tuple[int, ...]], ...] = (
        ("thread", plan.thread_workers),
        ("process", plan.process_workers),
    )
    for mode, counts in modes:
        for workers in counts:
            progress(f"no-op drain, {workers} {mode} worker(s)")
            drains[f"{mode}:{workers}"] = _median(
                plan.repeats, partial(drain_rate, url, plan.jobs, workers, mode)
            )
    out["drain_noop_per_s"] = drains
    progress("retry-once drain, 4 threads")
    out["drain_retry_once_4_per_s"] = _median(
        plan.repeats, lambda: drain_rate(url, plan.jobs, 4, "thread", retry_once=True)
    )
    progress("timing capture off vs on, 4 threads")
    off = _median(plan.repeats, lambda: drain_rate(url, plan.jobs, 4, "thread", attempt_log=False))
    out["drain_noop_4_no_attempt_log_per_s"] = off
    out["attempt_log_overhead"] = 1 - drains.get("thread:4", off) / off
    progress("submit-to-start latency on an idle pool")
    out["start_latency_ms"] = start_latency_ms(client, plan.latency_samples)
    progress("idle CPU")
    out["idle_cpu_percent"] = idle_cpu_percent(client, plan.idle_s)
    progress("Redis memory per job")
    out["memory"] = memory_per_job(client, plan.memory_jobs)
    return out


def drain_rate(
    url: str,
    jobs: int,
    workers: int,
    mode: Mode,
    *,
    retry_once: bool = False,
    attempt_log: bool = True,
) -> float:
    """Jobs/s draining ``jobs`` pre-submitted no-op (or fail-once) jobs.

    Timed from the first attempt's start to the last job's finish, both Redis ``TIME``;
    the attempt log is read for that, so with ``attempt_log=False`` a wall clock is used.
    """
    client = connect(url)
    config = QueueConfig(
        retry=RetryPolicy.immediate(),
        attempt_log=attempt_log,
        retention=Retention(max_completed=None, max_age_s=None),  # records are read back
    )
    with _scratch_queue(client, config) as queue:
        request = JobRequest("fail", {"times": 1}) if retry_once else JobRequest("noop")
        ids = queue.submit_many([request] * jobs)
        started = time.perf_counter()
        with WorkerPool(queue, workers, mode):
            queue.wait_until_drained(timeout_s=600)
            wall = time.perf_counter() - started
        if not attempt_log:
            return jobs / wall
        first, last = _span(queue, ids)
        return jobs / (last - first)


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
                ("enqueue_per_s", partial(module.enqueue, url, plan.single_submits)),
                ("drain_noop_1_per_s", partial(drain, url, n, 1, "noop")),
                ("drain_noop_4_per_s", partial(drain, url, n, 4, "noop")),
                ("drain_retry_once_4_per_s", partial(drain, url, n, 4, "retry_once")),
            ]
            row: dict[str, Any] = {"note": module.NOTE}
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


# --- reports ------------------------------------------------------------------------------


def write_report(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``bench.json``, ``bench.md`` and (with matplotlib) ``bench.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "bench.json", out_dir / "bench.md"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(markdown(results))
    chart = _chart(results, out_dir / "bench.png")
    return [*paths, *([chart] if chart else [])]


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables, with jobsim / peer ratios."""
    j = results["jobsim"]
    drains = j["drain_noop_per_s"]
    lines = ["# jobsim benchmark", "", _machine_line(results), ""]
    lines += ["| measurement | value |", "|---|---|"]
    lines.append(f"| round trips (PING) | {j['ping_per_s']:,.0f}/s |")
    lines.append(
        f"| single submit | {j['submit_per_s']:,.0f} jobs/s "
        f"({j['submit_per_s'] / j['ping_per_s']:.0%} of the round-trip rate) |"
    )
    lines.append(f"| batch submit | {j['submit_batch_per_s']:,.0f} jobs/s |")
    for key, rate in drains.items():
        mode, workers = key.split(":")
        lines.append(f"| no-op drain, {workers} {mode} worker(s) | {rate:,.0f} jobs/s |")
    lines.append(f"| retry-once drain, 4 threads | {j['drain_retry_once_4_per_s']:,.0f} jobs/s |")
    lines.append(f"| timing capture cost (4 threads) | {j['attempt_log_overhead']:.1%} |")
    lat = j["start_latency_ms"]
    lines.append(
        f"| submit-to-start, idle pool | p50 {lat['p50']} ms, p90 {lat['p90']} ms, "
        f"p99 {lat['p99']} ms |"
    )
    cpu = j["idle_cpu_percent"]
    lines.append(
        f"| idle CPU, 4 workers | threads {cpu['thread_pool_4']}%, "
        f"processes {cpu['process_pool_4']}% of a core |"
    )
    mem = j["memory"]
    lines.append(f"| Redis memory per queued job | {mem['bytes_per_queued_job']:,.0f} bytes |")
    lines.append(
        f"| after draining {results['plan']['memory_jobs']:,} jobs, keep 1,000 | "
        f"{mem['bytes_left_after_drain_keep_1000']:,} bytes left |"
    )
    if results.get("peers"):
        lines += ["", _peer_table(results), ""]
    return "\n".join(lines) + "\n"


def _machine_line(results: dict[str, Any]) -> str:
    m, p = results["machine"], results["plan"]
    return (
        f"{m['cpus']} CPUs, redis-server {m['redis_version']} on loopback; "
        f"{p['jobs']:,} jobs per jobsim drain, median of {p['repeats']}; "
        f"{p['peer_jobs']:,} jobs per peer drain."
    )


def _peer_table(results: dict[str, Any]) -> str:
    j = results["jobsim"]
    ours = {
        "drain_noop_1_per_s": j["drain_noop_per_s"].get("thread:1"),
        "drain_noop_4_per_s": j["drain_noop_per_s"].get("thread:4"),
        "drain_retry_once_4_per_s": j["drain_retry_once_4_per_s"],
        "enqueue_per_s": j["submit_per_s"],
    }
    cols = list(ours)
    lines = [
        "| queue | no-op drain, 1 worker | no-op drain, 4 workers | retry-once, 4 workers "
        "| enqueue |",
        "|---|---|---|---|---|",
    ]
    lines.append("| **jobsim** (threads) | " + " | ".join(_fmt(ours[c]) for c in cols) + " |")
    for name, row in results["peers"].items():
        cells = []
        for c in cols:
            theirs = row.get(c)
            ratio = f" (jobsim {ours[c] / theirs:.1f}x)" if theirs and ours[c] else ""
            cells.append(_fmt(theirs) + ratio)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = [f"- {name}: {row['note']}" for name, row in results["peers"].items()]
    return "\n".join([*lines, "", *notes])


def _fmt(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:,.0f}/s"


def _chart(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drains = results["jobsim"]["drain_noop_per_s"]
    for mode, label in (("thread", "jobsim, threads"), ("process", "jobsim, processes")):
        points = sorted((int(k.split(":")[1]), v) for k, v in drains.items() if k.startswith(mode))
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    for name, row in (results.get("peers") or {}).items():
        xs = [w for w in (1, 4) if row.get(f"drain_noop_{w}_per_s")]
        ys = [row[f"drain_noop_{w}_per_s"] for w in xs]
        if xs:
            ax.plot(xs, ys, marker="s", linestyle="--", label=name)
    ax.set_xlabel("workers")
    ax.set_ylabel("no-op drain throughput (jobs/s)")
    ax.set_title("Throughput vs workers, redis-server on loopback")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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


def _median(repeats: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(repeats))


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
