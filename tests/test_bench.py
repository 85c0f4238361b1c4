"""A smoke run of the benchmark, so it cannot rot. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

from jobsim.bench import BenchPlan, run_bench, write_report


def test_quick_bench_measures_everything_and_writes_its_reports(
    redis_server, tmp_path: Path
) -> None:
    results = run_bench(BenchPlan.quick(), progress=lambda _: None)
    ours = results["jobsim"]
    expected = {
        "ping_per_s", "submit_per_s", "submit_batch_per_s", "drain_noop_per_s",
        "drain_retry_once_4_per_s", "attempt_log_overhead", "start_latency_ms",
        "idle_cpu_percent", "memory",
    }  # fmt: skip
    assert expected <= set(ours)
    assert set(ours["drain_noop_per_s"]) == {"thread:1", "thread:4", "process:2"}
    assert all(rate > 0 for rate in ours["drain_noop_per_s"].values())
    assert ours["memory"]["completed_records_kept"] == 1000
    paths = write_report(results, tmp_path)
    assert json.loads(paths[0].read_text())["jobsim"]["submit_per_s"] > 0
    assert "| batch submit |" in paths[1].read_text()
