"""The command line's error paths: every bad flag is one ``jobsim: error:`` line and exit 2.

Each case runs ``main()`` in-process: a traceback would surface here as an exception, which
fails the test. None of these cases gets as far as running a workload or a worker.
"""

from __future__ import annotations

import re

import pytest

from jobsim.cli import main
from jobsim.localredis import free_port


def _traceback_bug(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"bug: traceback instead of exit 2: {reason}")


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        (["demo"], ["--jobs", "--workers", "--seed", "--time-scale", "--out", "--redis"]),
        (["run"], ["--jobs", "--arrival", "--rate", "--service", "--priorities", "--poison",
                   "--crashes", "--drops", "--pause", "--restart", "--local", "--json-out",
                   "--out"]),
        (["sweep"], ["--grid", "--csv", "--jobs", "--workers"]),
        (["worker"], ["--redis", "--queue", "--concurrency", "--processes", "--lease-s",
                      "--import", "--retry", "--keep-completed", "--grace-s"]),
        (["serve"], ["--host", "--port", "--workers", "--log-level", "--redis", "--import"]),
        (["bench"], ["--quick", "--peers", "--out"]),
        (["stats"], ["--redis", "--queue"]),
    ],
)  # fmt: skip
def test_each_command_s_help_lists_its_own_options(
    command: list[str], flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`jobsim CMD --help` exits 0 and documents every option the command takes."""
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: jobsim {command[0]}")
    missing = [f for f in flags if f not in out]
    assert not missing


def test_the_top_level_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`jobsim --help` lists all seven commands."""
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("demo", "run", "sweep", "worker", "serve", "bench", "stats"):
        assert name in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nosuch"],
        ["run", "--jobs", "many"],
        ["run", "--arrival", "gamma"],
        ["run", "--service", "pareto"],
        ["run", "--redis", "redis://127.0.0.1:1/0", "--local"],
        ["worker", "--retry", "linear"],
        ["serve", "--log-level", "loud"],
        ["serve", "--port", "eighty"],
        ["bench", "--bogus"],
        ["stats", "extra"],
    ],
    ids=lambda argv: " ".join(argv) or "no-command",
)
def test_a_flag_argparse_rejects_prints_usage_and_exits_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown commands, bad choices, non-numbers and conflicting flags: usage, exit 2."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: jobsim" in err and "jobsim" in err.splitlines()[-1]
    assert "Traceback" not in err


UNREACHABLE = f"redis://127.0.0.1:{free_port()}/0"

CLEAN_ERRORS = [
    (["run", "--jobs", "0"], "jobs must be >= 1"),
    (["run", "--jobs", "5", "--fail-probability", "2"], "fail_probability"),
    (["run", "--jobs", "5", "--time-scale", "0"], "time_scale"),
    (["run", "--jobs", "5", "--max-retries", "-1"], "max_retries"),
    (["run", "--jobs", "5", "--lease-s", "0"], "lease"),
    (["run", "--jobs", "5", "--workers", "0"], "concurrency"),
    (["run", "--jobs", "5", "--slow-factor", "0.5"], "slow_worker_factor"),
    (["run", "--jobs", "5", "--exception-probability", "-1"], "exception_probability"),
    (["run", "--jobs", "5", "--poison", "3:explode"], "poison modes"),
    (["run", "--jobs", "5", "--priorities", "12:1"], "priorities"),
    (["run", "--jobs", "5", "--redis", "http://x"], "unsupported scheme"),
    (["demo", "--jobs", "0"], "jobs must be >= 1"),
    (["demo", "--time-scale", "0"], "time_scale"),
    (["sweep", "--jobs", "5", "--grid", "workers=0"], "concurrency"),
    (["worker", "--concurrency", "0"], "concurrency"),
    (["worker", "--retry-base-s", "-1"], "base_s"),
    (["worker", "--retry-base-s", "2", "--retry-cap-s", "1"], "cap_s"),
    (["worker", "--lease-s", "0"], "lease"),
    (["worker", "--keep-completed", "-1"], "max_completed"),
    (["worker", "--keep-completed-s", "-1"], "max_age_s"),
    (["worker", "--aging-s", "-1"], "aging_s"),
    (["worker", "--job-timeout-s", "-1"], "job_timeout_s"),
    (["worker", "--grace-s", "-1"], "grace_s"),
    (["worker", "--queue", "bad name"], "queue name"),
    (["worker", "--queue", "a", "--weight", "-1"], "weight"),  # once ignored with one queue
    (["worker", "--redis", UNREACHABLE], "cannot reach Redis"),
    (["stats", "--queue", ""], "queue name"),
    (["stats", "--redis", UNREACHABLE], "cannot reach Redis"),
    (["stats", "--redis", "redis://:s3cret@127.0.0.1:1/x"], "not a number"),
    (["serve", "--port", "70000", "--workers", "0"], "outside 0..65535"),
    (["serve", "--workers", "-1", "--port", "0"], "workers"),
    (["serve", "--host", "999.1.1.1", "--port", "0", "--workers", "0"], "cannot listen"),
    # once tracebacks (found by this file), now one line each
    (["run", "--jobs", "5", "--priorities", "9"], "KEY:VALUE"),
    (["run", "--jobs", "5", "--priorities", "x:1"], "priorit"),
    (["run", "--jobs", "5", "--drops", "soon"], "drops"),
    (["run", "--jobs", "5", "--pause", "1"], "KEY:VALUE"),
    (["run", "--jobs", "5", "--rate", "0"], "rate"),
    (["run", "--jobs", "5", "--rate", "-1"], "rate"),
    (["run", "--jobs", "5", "--arrival", "bursty", "--burst-on-s", "0"], "on"),
    (["run", "--jobs", "5", "--service", "lognormal", "--scv", "-1"], "scv"),
    (["sweep", "--jobs", "5", "--grid", "bogus=1,2"], "bogus"),
    (["worker", "--import", "no_such_module_xyz"], "no_such_module_xyz"),
    (["serve", "--import", "no_such_module_xyz", "--workers", "0"], "no_such_module_xyz"),
    (["run", "--jobs", "5", "--priorities", "0:0"], "priorit"),
    (["run", "--jobs", "5", "--crashes", "-1"], "crash"),
    # an output that cannot be written: one line, not an OSError's traceback
    (
        [
            "run",
            "--jobs",
            "1",
            "--arrival",
            "all",
            "--mean-s",
            "0",
            "--json-out",
            "/nonexistent-dir/run.json",
        ],
        "No such file or directory",
    ),
]

TRACEBACK_BUGS: list[object] = []  # every case found so far is fixed; add new ones here


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        *[
            pytest.param(a, w, id=" ".join(a).replace(UNREACHABLE, "UNREACHABLE"))
            for a, w in CLEAN_ERRORS
        ],
        *TRACEBACK_BUGS,
    ],
)
def test_a_bad_value_is_one_error_line_and_exit_2(
    argv: list[str],
    words: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Bad values: one `jobsim[ CMD]: error: ...` line naming it, exit 2, no traceback.

    `worker` and `stats` need a shared Redis before they look at anything else, so their
    cases get the suite's redis-server unless they name a URL themselves."""
    if argv[0] in ("worker", "stats") and "--redis" not in argv:
        monkeypatch.setenv("JOBSIM_REDIS_URL", request.getfixturevalue("redis_server").url)
    try:
        code = main(argv)
    except SystemExit as exc:  # refused while parsing: argparse's own one-line error
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert re.match(r"jobsim( \w+)?: error:", last) and words in last, last
    assert "Traceback" not in err and "s3cret" not in err
