"""The CI gate of ``jobsim bench``: figures normalised to the round-trip rate, compared with a
baseline, and the exit code. Synthetic results with round numbers, so every comparison is
exact; one tiny real drain on the embedded backend. No speed is asserted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobsim.bench import BenchPlan, compare, drain_rate, load_plan, parse_mix, regressions, table
from jobsim.bench.figures import Figures, normalised
from jobsim.errors import InvalidInputError
from tests.support.backends import backend_url
from tests.test_bench_report import RESULTS


def _results(ping: float, submit: float, latency_ms: float, ratio: float) -> dict[str, Any]:
    fig = Figures(repeats=1)
    fig.record("ping_per_s", [ping])
    fig.record("submit_per_s", [submit])
    fig.record("start_latency_p50_ms", [latency_ms], unit="ms", better="lower")
    fig.record("http_submit_ratio", [ratio], unit="x")
    return {"jobsim": {"figures": fig.figures}}


BASE = _results(ping=10_000, submit=4_000, latency_ms=1.0, ratio=0.8)


def test_a_machine_twice_as_fast_everywhere_is_no_change() -> None:
    """Normalised to the round-trip rate, doubling every rate and halving the latency is 0%."""
    after = _results(ping=20_000, submit=8_000, latency_ms=0.5, ratio=0.8)
    changes = {c.name: c for c in compare(BASE, after)}
    assert set(changes) == {"submit_per_s", "start_latency_p50_ms", "http_submit_ratio"}
    assert changes["submit_per_s"].before_norm == pytest.approx(0.4)
    assert changes["submit_per_s"].after_norm == pytest.approx(0.4)
    assert changes["start_latency_p50_ms"].after_norm == pytest.approx(10.0)  # round trips
    assert all(c.change == pytest.approx(0.0) for c in changes.values())
    assert regressions(list(changes.values()), 1.0) == []


def test_a_normalised_drop_beyond_the_limit_is_a_regression_and_within_it_is_not() -> None:
    """Submit 4,000 -> 3,400 on the same round-trip rate is -15%: over 10%, under 20%."""
    after = _results(ping=10_000, submit=3_400, latency_ms=1.0, ratio=0.8)
    changes = compare(BASE, after)
    submit = next(c for c in changes if c.name == "submit_per_s")
    assert submit.change == pytest.approx(-0.15)
    assert [c.name for c in regressions(changes, 10)] == ["submit_per_s"]
    assert regressions(changes, 20) == []
    text = table(changes, 10)
    assert (
        "| submit_per_s | 4,000 /s | 3,400 /s | 0.4 | 0.34 | -15.0% | REGRESSION (> 10%) |" in text
    )


def test_a_lower_is_better_figure_regresses_when_it_grows() -> None:
    """Latency 1.0 -> 1.5 ms on the same round-trip rate is -50% (worse); 1.0 -> 0.5 is +50%."""
    slower = compare(BASE, _results(ping=10_000, submit=4_000, latency_ms=1.5, ratio=0.8))
    faster = compare(BASE, _results(ping=10_000, submit=4_000, latency_ms=0.5, ratio=0.8))
    assert [c.name for c in regressions(slower, 10)] == ["start_latency_p50_ms"]
    assert next(c for c in faster if c.name == "start_latency_p50_ms").change == pytest.approx(0.5)


def test_results_without_figures_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no figures"):
        compare({"jobsim": {"ping_per_s": 1.0}}, BASE)


def test_normalising_units() -> None:
    assert normalised({"unit": "/s", "median": 500.0}, 1000.0) == 0.5
    assert normalised({"unit": "ms", "median": 2.0}, 1000.0) == 2.0
    assert normalised({"unit": "B", "median": 400.0}, 1000.0) == 400.0


def test_figures_keep_min_median_max_of_the_repeats() -> None:
    fig = Figures(repeats=3)
    values = iter([3.0, 1.0, 2.0])
    assert fig.measure("x_per_s", lambda: next(values)) == 2.0
    assert fig.figures["x_per_s"] | {"runs": None} == {
        "min": 1.0, "median": 2.0, "max": 3.0, "unit": "/s", "better": "higher", "runs": None,
    }  # fmt: skip


def test_the_plan_reads_a_config_file_and_flags_override_it(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"thread_workers": [2], "lease_s": 7, "payload_bytes": 64}))
    plan = load_plan(path, BenchPlan.quick(), lease_s=3.0, jobs=None)
    assert (plan.thread_workers, plan.lease_s, plan.payload_bytes) == ((2,), 3.0, 64)
    assert plan.queue_config().lease.duration_s == 3.0
    path.write_text(json.dumps({"lease": 7}))
    with pytest.raises(InvalidInputError, match="unknown bench setting 'lease'"):
        load_plan(path, BenchPlan.quick())


def test_a_task_mix_is_drawn_in_its_exact_proportions() -> None:
    jobs = BenchPlan(task_mix=parse_mix("noop=3,fail_once=1")).requests(400)
    assert sum(j.task == "fail" for j in jobs) == 100
    with pytest.raises(InvalidInputError):
        BenchPlan(task_mix={"bogus": 1.0})


def test_a_tiny_real_drain_of_the_mix_finishes_every_job(backend, request) -> None:
    """On the embedded backend and a real server: every job of the mix drains (a rate)."""
    url = backend_url(backend, request)
    plan = BenchPlan.quick(task_mix={"noop": 1, "fail_once": 1}, payload_bytes=16)
    assert drain_rate(url, plan.requests(40), 2, "thread", plan.queue_config()) > 0


@pytest.mark.parametrize("submit, limit, code", [(3_400, 10, 1), (3_400, 20, 0), (4_000, 0, 0)])
def test_the_command_exits_1_on_a_regression_beyond_max_regression(
    submit: float, limit: float, code: int, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`jobsim bench --baseline FILE --max-regression PCT`: the measurement is replaced by
    known results (the gate is under test, not the machine), the exit code follows them."""
    import jobsim.bench
    from jobsim.cli import main

    quick = {
        "plan": {"jobs": 1, "repeats": 1, "peer_jobs": 1, "memory_jobs": 1},
        "machine": {"cpus": 1, "redis_version": "7"},
    }
    report = RESULTS  # the report tests' known results, for the tables
    after = {**report, **quick}
    after["jobsim"] = {**report["jobsim"], **_results(10_000, submit, 1.0, 0.8)["jobsim"]}
    monkeypatch.setattr(jobsim.bench, "run_bench", lambda plan, **_: after)
    baseline = tmp_path / "base.json"
    baseline.write_text(json.dumps(BASE))
    argv = [
        "bench",
        "--quick",
        "--out",
        str(tmp_path / "out"),
        "--json-out",
        str(tmp_path / "new.json"),
    ]
    argv += ["--baseline", str(baseline), "--max-regression", str(limit)]
    assert main(argv) == code
    out = capsys.readouterr().out
    assert ("regression(s) over" in out) == (code == 1)
    assert json.loads((tmp_path / "new.json").read_text())["jobsim"]["figures"]


def test_a_baseline_that_is_not_a_bench_json_is_a_clean_error(tmp_path: Path, capsys) -> None:
    from jobsim.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["bench", "--quick", "--baseline", str(bad)]) == 2
    assert "not the --json-out of a jobsim bench run" in capsys.readouterr().err
