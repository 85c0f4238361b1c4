"""The command line: help, the demo, stats, and bad input answered without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobsim.cli import main


@pytest.mark.parametrize("command", [[], ["demo"], ["worker"], ["stats"]])
def test_help_describes_every_command(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: jobsim" in capsys.readouterr().out


def test_demo_runs_on_the_embedded_backend_and_loses_nothing() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jobsim", "demo", "--jobs", "60", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "lost jobs: 0" in out.stdout
    assert "attempts per job" in out.stdout and "dead-letter rate" in out.stdout


def test_stats_against_a_real_server(redis_server, capsys) -> None:
    assert main(["stats", "--redis", redis_server.url, "--queue", "empty"]) == 0
    assert "queued" in capsys.readouterr().out


def test_bad_url_is_a_clean_error(capsys) -> None:
    assert main(["stats", "--redis", "http://nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jobsim: error:") and "Traceback" not in err
