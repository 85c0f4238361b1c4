"""jobsim.bench reports: the Markdown tables, the JSON and the chart, from known results.

The numbers are made up and round, so every ratio and cell is checked exactly; nothing runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from jobsim.bench import markdown, write_report

RESULTS = {
    "machine": {"cpus": 8, "redis_version": "7.2.4"},
    "plan": {"jobs": 20_000, "repeats": 3, "peer_jobs": 5_000, "memory_jobs": 50_000},
    "jobsim": {
        "ping_per_s": 40_000.0,
        "submit_per_s": 10_000.0,
        "submit_batch_per_s": 90_000.0,
        "drain_noop_per_s": {"thread:1": 2_000.0, "thread:4": 6_000.0, "process:2": 3_000.0},
        "drain_retry_once_4_per_s": 3_000.0,
        "attempt_log_overhead": 0.125,
        "start_latency_ms": {"p50": 1.2, "p90": 2.5, "p99": 9.0},
        "idle_cpu_percent": {"thread_pool_4": 0.4, "process_pool_4": 1.1},
        "memory": {
            "bytes_per_queued_job": 512.4,
            "bytes_left_after_drain_keep_1000": 600_000,
            "completed_records_kept": 1000,
        },
    },
}

PEERS = {
    "rq": {
        "note": "one process per worker",
        "enqueue_per_s": 5_000.0,
        "drain_noop_1_per_s": 1_000.0,
        "drain_noop_4_per_s": None,
        "drain_retry_once_4_per_s": 1_500.0,
        "errors": ["drain_noop_4_per_s: RuntimeError: boom"],
    },
}


def test_the_markdown_states_the_machine_and_every_measurement() -> None:
    """One line per measurement, in its unit, with the submit share of the round-trip rate."""
    text = markdown(RESULTS)
    assert text.startswith("# jobsim benchmark\n")
    assert (
        "8 CPUs, redis-server 7.2.4 on loopback; 20,000 jobs per jobsim drain, median of 3" in text
    )
    for line in [
        "| round trips (PING) | 40,000/s |",
        "| single submit | 10,000 jobs/s (25% of the round-trip rate) |",
        "| batch submit | 90,000 jobs/s |",
        "| no-op drain, 1 thread worker(s) | 2,000 jobs/s |",
        "| no-op drain, 2 process worker(s) | 3,000 jobs/s |",
        "| retry-once drain, 4 threads | 3,000 jobs/s |",
        "| timing capture cost (4 threads) | 12.5% |",
        "| submit-to-start, idle pool | p50 1.2 ms, p90 2.5 ms, p99 9.0 ms |",
        "| idle CPU, 4 workers | threads 0.4%, processes 1.1% of a core |",
        "| Redis memory per queued job | 512 bytes |",
        "| after draining 50,000 jobs, keep 1,000 | 600,000 bytes left |",
    ]:
        assert line in text.splitlines(), line
    assert "| queue |" not in text  # no peer table without peers


def test_the_peer_table_gives_jobsim_over_peer_ratios_and_dashes_for_missing_runs() -> None:
    """Each peer cell is its rate and jobsim's multiple of it; a failed run is a dash."""
    text = markdown({**RESULTS, "peers": PEERS})
    rows = text.splitlines()
    ours = next(r for r in rows if r.startswith("| **jobsim**"))
    assert ours == "| **jobsim** (threads) | 2,000/s | 6,000/s | 3,000/s | 10,000/s |"
    rq = next(r for r in rows if r.startswith("| rq |"))
    assert rq == (
        "| rq | 1,000/s (jobsim 2.00x) | — | 1,500/s (jobsim 2.00x) | 5,000/s (jobsim 2.00x) |"
    )
    assert "- rq: one process per worker" in rows


def test_write_report_writes_json_markdown_and_a_png_chart(tmp_path: Path) -> None:
    """bench.json round-trips the results, bench.md is markdown(), bench.png is a PNG."""
    out = tmp_path / "nested" / "bench"
    paths = write_report({**RESULTS, "peers": PEERS}, out)
    assert [p.name for p in paths] == ["bench.json", "bench.md", "bench.png"]
    assert json.loads(paths[0].read_text()) == {**RESULTS, "peers": PEERS}
    assert paths[1].read_text() == markdown({**RESULTS, "peers": PEERS})
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_ratio_lines_give_http_submit_with_and_without_workers_and_submit_vs_peers() -> None:
    """The HTTP ratios (no workers, a worker process, threads in the server) and the
    single-submit ratio to each peer's enqueue, each from its own side-by-side rates."""
    http = {
        "jobsim_per_s": 800.0,
        "bare_fastapi_per_s": 1_000.0,
        "ratio": 0.8,
        "worker_process_per_s": 700.0,
        "worker_process_ratio": 0.7,
        "threads_in_server_per_s": 500.0,
        "threads_in_server_ratio": 0.5,
    }
    peers = {"Huey": {**PEERS["rq"], "jobsim_submit_per_s": 4_000.0, "enqueue_per_s": 5_000.0}}
    results = {**RESULTS, "jobsim": {**RESULTS["jobsim"], "http_submit": http}, "peers": peers}
    rows = markdown(results).splitlines()
    for line in [
        "| HTTP submit vs a bare FastAPI POST, no workers | jobsim 800/s, bare 1,000/s: 0.80x |",
        "| HTTP submit vs a bare FastAPI POST, 4 workers running the jobs in a worker process "
        "(serve's default) | jobsim 700/s: 0.70x |",
        "| HTTP submit vs a bare FastAPI POST, 4 worker threads running the jobs in the "
        "server's process | jobsim 500/s: 0.50x |",
        "| single submit vs Huey enqueue | jobsim 4,000/s, Huey 5,000/s: 0.80x |",
    ]:
        assert line in rows, line
