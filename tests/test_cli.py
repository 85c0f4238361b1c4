"""The command line: help, the demo, stats, serve, and bad input answered without a traceback."""

from __future__ import annotations

import json
import os
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
                 "0.3", "--crashes", "1", "--json-out", str(path)])  # fmt: skip
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
    assert "default: 127.0.0.1" in capsys.readouterr().out


def test_serve_on_a_busy_port_is_a_clean_error_before_any_worker_starts(capsys) -> None:
    """A port already in use is reported as one line, exit status 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jobsim: error: cannot listen") and "Traceback" not in err


def test_version_prints_the_package_version(capsys) -> None:
    from jobsim import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"jobsim {__version__}"


BAD_INPUT = [
    ["sweep", "--jobs", "5", "--grid", "bogus=1"],
    ["sweep", "--jobs", "5", "--grid", "workers"],
    ["worker", "--redis", "redis://127.0.0.1:1", "--import", "missing_module_xyz"],
    ["serve", "--workers", "0", "--import", "missing_module_xyz"],
    ["run", "--priorities", "x"],
    ["run", "--drops", "x"],
    ["run", "--pause", "1:x"],
    ["run", "--restart", "x:always", "--local"],
    ["run", "--rate", "0"],
    ["run", "--mean-s", "-1"],
    ["run", "--arrival", "bursty", "--burst-on-s", "0"],
    ["serve", "--limit-concurrency", "0"],
    ["serve", "--read-timeout-s", "0"],
]


@pytest.mark.parametrize("argv", BAD_INPUT, ids=" ".join)
def test_bad_input_is_one_line_exit_2_and_no_traceback(argv: list[str]) -> None:
    """Each bad flag value is refused with a `jobsim` error line and exit status 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSIM_")}
    out = subprocess.run(
        [sys.executable, "-m", "jobsim", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("jobsim") and "error:" in last, out.stderr


@pytest.mark.parametrize("command", ["stats", "worker"])
def test_stats_and_worker_refuse_to_run_on_a_private_embedded_queue(
    command: str, capsys, monkeypatch
) -> None:
    """Without --redis or $JOBSIM_REDIS_URL they would look at / serve a queue nobody else can
    reach; they say so instead."""
    monkeypatch.delenv("JOBSIM_REDIS_URL", raising=False)
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jobsim: error:") and "--redis" in err and "JOBSIM_REDIS_URL" in err


def test_stats_reads_the_url_from_the_environment(redis_server, capsys, monkeypatch) -> None:
    monkeypatch.setenv("JOBSIM_REDIS_URL", redis_server.url)
    assert main(["stats", "--queue", "empty"]) == 0
    assert "queued" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["worker", "serve"])
@pytest.mark.parametrize("flag", ["--workers", "--concurrency"])
def test_workers_and_concurrency_are_one_flag_on_both_commands(command: str, flag: str) -> None:
    from jobsim.cli import _parser

    args = _parser().parse_args([command, flag, "3"])
    assert args.workers == 3
    default = _parser().parse_args([command])
    assert default.workers == 4
