"""Every flag of every ``jobsim`` command reads ``$JOBSIM_<FLAG>`` (jobsim.settings): the
variable means what the flag means on the command line, the command line wins over it, a bad
value is one error line naming it (exit 2), and ``--help`` names each variable and default.

The flags are found by walking the parser, so a flag added later is covered (and fails here
if the environment cannot set it)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from jobsim.cli import _parser, main, parse
from jobsim.settings import SEPARATORS, env_flags

POSITIONALS = {"submit": ["noop"], "cancel": ["job-1"]}
"""Each command's required positional arguments, so that it parses."""
CANDIDATES = ["3", "7", "2048", "0.5", "from-env"]
"""Values tried, in order, for a flag; the first its type takes that is not its default."""


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


PARSERS = _commands()
COMMANDS = sorted(PARSERS)
DEFAULTS = {id(a): a.default for p in PARSERS.values() for a in p._actions}
"""Each flag's built-in default, read before any parse (a parse sets the environment's)."""


def _parse(argv: list[str]) -> argparse.Namespace:
    """``parse(argv)`` on one parser per command, kept: a parser reads the environment afresh
    on every parse (which this reuse also checks), and building one costs more than parsing."""
    return PARSERS[argv[0]].parse_args(argv[1:])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``JOBSIM_*`` variable from the outside (or from an earlier test's worker, which
    exports ``$JOBSIM_LOG_FORMAT``) leaks in."""
    for name in [n for n in os.environ if n.upper().startswith("JOBSIM_")]:
        monkeypatch.delenv(name)
    yield


def _is_switch(action: argparse.Action) -> bool:
    return action.nargs == 0


def _is_list(action: argparse.Action) -> bool:
    return isinstance(action, argparse._AppendAction)


def _values(action: argparse.Action, skip: Any = None) -> list[str]:
    """Values the flag accepts, other than its default (and ``skip``)."""
    convert = action.type if callable(action.type) else str
    pool = [str(c) for c in action.choices] if action.choices else CANDIDATES
    found = []
    for text in pool:
        try:
            value = convert(text)
        except (argparse.ArgumentTypeError, ValueError):
            continue
        if value != DEFAULTS[id(action)] and value != skip and text not in found:
            found.append(text)
    return found


def _sample(action: argparse.Action, which: int = 0) -> tuple[str, list[str]]:
    """An environment value for the flag, and the command-line arguments meaning the same."""
    flag = action.option_strings[0]
    if _is_switch(action):
        return ("true", [flag]) if which == 0 else ("false", [f"--no-{flag[2:]}"])
    values = _values(action)
    if _is_list(action):
        items = values[which : which + 2] or values[:1]
        separator = SEPARATORS.get(flag, ",")
        return separator.join(items), [arg for item in items for arg in (flag, item)]
    return values[which], [flag, values[which]]


def _flags(command: str) -> list[tuple[argparse.Action, str]]:
    return [(f.action, f.env) for f in env_flags(PARSERS[command])]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_of_the_command_is_read_from_its_variable(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For each flag alone, `$JOBSIM_<FLAG>` gives the value the same text gives on the
    command line, and differs from the default (so the variable did something)."""
    base = [command, *POSITIONALS.get(command, [])]
    flags = _flags(command)
    wrong = []
    for action, env in flags:
        raw, cli = _sample(action)
        expected = getattr(_parse([*base, *cli]), action.dest)
        monkeypatch.setenv(env, raw)
        got = getattr(_parse(base), action.dest)
        monkeypatch.delenv(env)
        if got != expected or got == DEFAULTS[id(action)]:
            wrong.append(f"{env}={raw!r}: {got!r}, but {' '.join(cli)} gives {expected!r}")
    assert wrong == []
    assert flags or command in ("purge",), "a command without flags?"


@pytest.mark.parametrize("command", COMMANDS)
def test_the_command_line_wins_over_the_environment(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For each flag, with its variable set, the flag given on the command line takes the
    command line's value (a repeatable flag's list replaces the variable's; `--no-X`
    turns off a switch the environment turned on)."""
    base = [command, *POSITIONALS.get(command, [])]
    wrong = []
    for action, env in _flags(command):
        raw, _ = _sample(action)
        monkeypatch.setenv(env, raw)
        if _is_switch(action):
            _, cli = _sample(action, 1)
        else:
            other = _values(action, skip=_convert(action, raw.split(",")[0]))
            cli = [action.option_strings[0], (other or [str(DEFAULTS[id(action)])])[-1]]
        expected = getattr(_without_env([*base, *cli]), action.dest)
        got = getattr(_parse([*base, *cli]), action.dest)
        monkeypatch.delenv(env)
        if got != expected:
            wrong.append(f"{env}={raw!r} {' '.join(cli)}: {got!r}, expected {expected!r}")
    assert wrong == []


def _convert(action: argparse.Action, text: str) -> Any:
    return (action.type if callable(action.type) else str)(text)


def _without_env(argv: list[str]) -> argparse.Namespace:
    saved = {k: v for k, v in os.environ.items() if k.startswith("JOBSIM_")}
    for k in saved:
        del os.environ[k]
    try:
        return _parse(argv)
    finally:
        os.environ.update(saved)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_value_in_a_variable_is_one_line_naming_it(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every flag that can refuse a value (a switch, a number, a choice) refuses
    `@bad@` from its variable: exit 2 and one `jobsim CMD: error:` line naming it."""
    base = [command, *POSITIONALS.get(command, [])]
    checked = 0
    for action, env in _flags(command):
        if not (_is_switch(action) or callable(action.type) or action.choices):
            continue  # free text: any value is a value
        monkeypatch.setenv(env, "@bad@")
        with pytest.raises(SystemExit) as info:
            _parse(base)
        monkeypatch.delenv(env)
        err = capsys.readouterr().err
        assert info.value.code == 2, env
        assert err.count("\n") == 1 and err.startswith(f"jobsim {command}: error: ${env}="), err
        checked += 1
    assert checked or command in ("purge", "pause", "resume", "stats", "requeue", "cancel")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_each_flag_s_variable_and_default(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`jobsim CMD --help` shows `[$JOBSIM_X, default: D]` for every flag, and a value set
    in the environment as overriding the default."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # undo the help's line wrapping
    missing = [env for _, env in _flags(command) if f"[${env}, default: " not in out]
    assert missing == []
    flags = _flags(command)
    if not flags:
        return
    action, env = flags[-1]
    raw, _ = _sample(action)
    monkeypatch.setenv(env, raw)
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert f"[${env}=" in " ".join(capsys.readouterr().out.split())


def test_the_redis_url_keeps_its_name_on_every_command(monkeypatch) -> None:
    """`--redis` reads `$JOBSIM_REDIS_URL` (what `jobsim.connect()` reads), everywhere."""
    monkeypatch.setenv("JOBSIM_REDIS_URL", "redis://127.0.0.1:1/0")
    having = [c for c in COMMANDS if any(a.dest == "redis" for a, _ in _flags(c))]
    assert {"worker", "serve", "stats", "submit", "run", "demo"} <= set(having)
    for command in having:
        assert parse([command, *POSITIONALS.get(command, [])]).redis == "redis://127.0.0.1:1/0"


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_the_deprecated_concurrency_variable_still_counts_with_a_warning(
    command: str, monkeypatch, capsys
) -> None:
    """`$JOBSIM_CONCURRENCY` (as `--concurrency`) still sets the workers, and says to use
    `$JOBSIM_WORKERS`; when both are set, `$JOBSIM_WORKERS` wins."""
    monkeypatch.setenv("JOBSIM_CONCURRENCY", "3")
    assert parse([command]).workers == 3
    assert "$JOBSIM_CONCURRENCY is deprecated; use $JOBSIM_WORKERS" in capsys.readouterr().err
    monkeypatch.setenv("JOBSIM_WORKERS", "2")
    assert parse([command]).workers == 2


def test_the_old_json_file_flag_still_works_with_a_warning(capsys, monkeypatch) -> None:
    """`run --json FILE` is now `--json-out FILE` (the admin commands' `--json` is a switch);
    the old name still works and says so, and `$JOBSIM_JSON` (the switch) does not touch it."""
    assert parse(["run", "--json", "x.json"]).json == "x.json"
    assert "--json is deprecated; use --json-out" in capsys.readouterr().err
    monkeypatch.setenv("JOBSIM_JSON", "true")
    assert parse(["run"]).json is None
    assert parse(["submit", "noop"]).json is True


def test_one_of_an_exclusive_pair_on_the_line_sets_the_other_s_variable_aside(
    monkeypatch, capsys
) -> None:
    """`run --local` with `$JOBSIM_REDIS_URL` set runs locally; both pair members set in the
    environment is one error line naming both variables."""
    monkeypatch.setenv("JOBSIM_REDIS_URL", "redis://127.0.0.1:1/0")
    args = parse(["run", "--local"])
    assert (args.local, args.redis) == (True, None)
    assert parse(["run"]).redis == "redis://127.0.0.1:1/0"
    monkeypatch.setenv("JOBSIM_LOCAL", "true")
    with pytest.raises(SystemExit) as info:
        parse(["run"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert "$JOBSIM_REDIS_URL" in err and "$JOBSIM_LOCAL" in err
    args = parse(["run", "--redis", "redis://127.0.0.1:2/0"])
    assert (args.local, args.redis) == (False, "redis://127.0.0.1:2/0")


def test_an_empty_variable_counts_as_unset(monkeypatch) -> None:
    monkeypatch.setenv("JOBSIM_PORT", "")
    assert parse(["serve"]).port == 8000


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("JOBSIM_PORT", "eighty", "invalid int value: 'eighty'"),
        ("JOBSIM_PROCESSES", "maybe", "expected true or false"),
        ("JOBSIM_LOG_LEVEL", "loud", "invalid choice: 'loud'"),
        ("JOBSIM_READ_TIMEOUT_S", "0", "must be > 0"),
    ],
)
def test_a_bad_variable_ends_the_real_command_with_one_line_and_no_traceback(
    name: str, value: str, words: str
) -> None:
    """The installed entry point, in a fresh process: exit 2, one stderr line, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSIM_")}
    out = subprocess.run(
        [sys.executable, "-m", "jobsim", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, name: value},
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 2
    assert out.stderr.startswith(f"jobsim serve: error: ${name}={value!r}: ")
    assert words in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
