"""The reports of ``jobsim bench``: ``bench.json``, Markdown tables (with jobsim / peer ratios
and the HTTP and single-submit ratios) and a throughput chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
    for key, rate in j.get("drain_mix_per_s", {}).items():
        mode, workers = key.split(":")
        mix = results["plan"].get("task_mix")
        lines.append(f"| drain of the mix {mix}, {workers} {mode} worker(s) | {rate:,.0f} jobs/s |")
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
    lines += _ratio_lines(results)
    if results.get("peers"):
        lines += ["", _peer_table(results), ""]
    return "\n".join(lines) + "\n"


HTTP_WITH_WORKERS = {
    "worker_process": "4 workers running the jobs in a worker process (serve's default)",
    "threads_in_server": "4 worker threads running the jobs in the server's process",
}
"""The HTTP variants with workers, as the table names them."""


def _ratio_lines(results: dict[str, Any]) -> list[str]:
    """The HTTP ratio and the single-submit ratios to each peer's enqueue, each measured
    side by side in this run."""
    lines = []
    http = results["jobsim"].get("http_submit")
    if http:
        lines.append(
            f"| HTTP submit vs a bare FastAPI POST, no workers | jobsim {http['jobsim_per_s']:,.0f}"
            f"/s, bare {http['bare_fastapi_per_s']:,.0f}/s: {http['ratio']:.2f}x |"
        )
    for name, what in HTTP_WITH_WORKERS.items():
        if http and f"{name}_ratio" in http:
            lines.append(
                f"| HTTP submit vs a bare FastAPI POST, {what} | jobsim "
                f"{http[name + '_per_s']:,.0f}/s: {http[name + '_ratio']:.2f}x |"
            )
    for name, row in (results.get("peers") or {}).items():
        ours, theirs = row.get("jobsim_submit_per_s"), row.get("enqueue_per_s")
        if ours and theirs:
            lines.append(
                f"| single submit vs {name} enqueue | jobsim {ours:,.0f}/s, {name} "
                f"{theirs:,.0f}/s: {ours / theirs:.2f}x |"
            )
    return lines


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
            theirs, mine = row.get(c), ours[c]
            if c == "enqueue_per_s":  # measured side by side with this peer
                mine = row.get("jobsim_submit_per_s", mine)
            ratio = f" (jobsim {mine / theirs:.2f}x)" if theirs and mine else ""
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
