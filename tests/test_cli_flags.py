"""One flag name means one thing on every ``jobsim`` command: the same destination, the same
kind (switch, list or value) and the same default, except where a command's default differs
on purpose (each exception below says why). Found by walking the parser, so a flag added
later is held to it."""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

from jobsim.cli import _parser

DIFFERENT_DEFAULTS = {
    "--jobs": "demo runs its fixed scenario (600); bench's unset means the plan's own",
    "--lease-s": "the simulator's is in model seconds (300, scaled to the wall clock by "
    "--time-scale); bench's unset means the plan's, which is the queue's 30",
    "--log-level": "dashboard starts at 'warning' to hide the access log",
    "--max-retries": "a simulator workload's retries (3) vs submit's unset: the task's own",
    "--out": "each command writes its own folder (run: none unless asked)",
    "--retry": "bench's unset means the plan's (fixed backoff, so figures are comparable)",
    "--retry-base-s": "bench's unset means the plan's (0)",
    "--seed": "demo runs its fixed scenario (seed 7)",
    "--time-scale": "demo runs its fixed scenario (0.2)",
    "--workers": "bench's is a list of counts to measure (unset: the plan's)",
}
DIFFERENT_KINDS = {
    "--queue": "worker and stats serve or read several queues; the others one",
}


def _flags() -> dict[str, list[tuple[str, argparse.Action]]]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    found: dict[str, list[tuple[str, argparse.Action]]] = defaultdict(list)
    for command, parser in sub.choices.items():
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                found[action.option_strings[0]].append((command, action))
    return found


def _kind(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "switch"
    return "list" if isinstance(action, argparse._AppendAction) else "value"


def _differs(uses: list[tuple[str, argparse.Action]], key: Any) -> dict[str, Any]:
    seen = {command: key(action) for command, action in uses}
    return seen if len(set(map(repr, seen.values()))) > 1 else {}


def test_a_flag_name_means_the_same_on_every_command() -> None:
    """Same name: same kind and destination (beyond the listed exceptions; a deprecated
    alias such as `--concurrency` is where it was, not added to new commands)."""
    wrong = {
        flag: seen
        for flag, uses in _flags().items()
        if flag not in DIFFERENT_KINDS and (seen := _differs(uses, lambda a: (_kind(a), a.dest)))
    }
    assert wrong == {}


def test_a_flag_has_one_default_on_every_command_unless_listed_with_a_reason() -> None:
    """Same name: same default, unless DIFFERENT_DEFAULTS says why not; and every listed
    exception is still one (a stale entry fails too)."""
    flags = _flags()
    wrong = {
        flag: seen
        for flag, uses in flags.items()
        if flag not in {**DIFFERENT_DEFAULTS, **DIFFERENT_KINDS}
        and (seen := _differs(uses, lambda a: a.default))
    }
    assert wrong == {}
    stale = [f for f in DIFFERENT_DEFAULTS if not _differs(flags[f], lambda a: a.default)]
    assert stale == []


def test_every_switch_can_be_turned_off_on_the_command_line() -> None:
    """A switch the environment can turn on has a `--no-X` to turn it off again."""
    missing = [
        f"{command} {flag}"
        for flag, uses in _flags().items()
        for command, action in uses
        if _kind(action) == "switch" and f"--no-{flag[2:]}" not in action.option_strings
    ]
    assert missing == []
