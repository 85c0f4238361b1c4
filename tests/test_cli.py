"""The command line: help, the demo, stats, serve, and bad input answered without a traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from jobsim.cli import main


@pytest.mark.parametrize(
    "command", [[], ["demo"], ["run"], ["sweep"], ["worker"], ["serve"], ["bench"], ["stats"]]
)
def test_help_describes_every_command(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: jobsim" in capsys.readouterr().out


def test_demo_runs_on_the_embedded_backend_and_writes_its_charts(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jobsim", "demo", "--jobs", "80", "--time-scale", "0.02",
         "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "-> VALID" in out.stdout and "attempts per job" in out.stdout
    names = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"jobs.csv", "attempts.csv", "summary.json", "throughput.png", "workers.png"} <= names


def test_run_writes_the_json_summary_the_issue_promises(tmp_path) -> None:
    path = tmp_path / "run.json"
    code = main(["run", "--jobs", "60", "--arrival", "all", "--mean-s", "0", "--fail-probability",
                 "0.3", "--crashes", "1", "--json", str(path)])  # fmt: skip
    assert code == 0
    summary = json.loads(path.read_text())
    for key in ("submitted", "completed", "failed", "lost", "duplicates", "attempts_per_job",
                "dead_letter_rate", "throughput_per_s", "theory", "valid"):  # fmt: skip
        assert key in summary
    for key in ("wait_s", "sojourn_s"):
        assert set(summary[key]) == {"mean", "p50", "p95", "p99"}
    assert summary["submitted"] == 60 and summary["valid"] is True


def test_sweep_writes_one_csv_row_per_combination(tmp_path) -> None:
    path = tmp_path / "sweep.csv"
    grid = ["--grid", "workers=1,2", "--grid", "fail_probability=0,0.5"]
    code = main(["sweep", "--jobs", "30", "--arrival", "all", "--mean-s", "0", *grid,
                 "--csv", str(path)])  # fmt: skip
    assert code == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("workers,fail_probability")


def test_stats_against_a_real_server(redis_server, capsys) -> None:
    assert main(["stats", "--redis", redis_server.url, "--queue", "empty"]) == 0
    assert "queued" in capsys.readouterr().out


def test_bad_url_is_a_clean_error(capsys) -> None:
    assert main(["stats", "--redis", "http://nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jobsim: error:") and "Traceback" not in err


def test_serve_binds_loopback_by_default(capsys) -> None:
    """`jobsim serve` listens on 127.0.0.1 unless told otherwise."""
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "default 127.0.0.1" in capsys.readouterr().out


def test_serve_on_a_busy_port_is_a_clean_error_before_any_worker_starts(capsys) -> None:
    """A port already in use is reported as one line, exit status 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jobsim: error: cannot listen") and "Traceback" not in err
