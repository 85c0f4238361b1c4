"""The ``jobsim`` command line's parser: :class:`CommandParser` reads every flag's default
from ``$JOBSIM_<FLAG>`` (:mod:`jobsim.settings`) and names the variable in ``--help``;
:class:`Switch` is a flag with a ``--no-`` form, :class:`DeprecatedAlias` an old name that
still works and warns."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from jobsim.errors import InvalidInputError
from jobsim.settings import EnvValues, env_flags, env_name, read_env


class DeprecatedAlias(argparse.Action):
    """Stores the value; every option string after the first is a deprecated alias that
    warns on stderr (``--concurrency``: say ``--workers``).

    Args:
        old_env: also read each alias's old variable, with a warning (``$JOBSIM_CONCURRENCY``
            for ``--workers``); leave it off where the old variable means something else
            (``$JOBSIM_JSON`` is the admin commands' switch, not ``run --json-out FILE``).
    """

    def __init__(
        self, option_strings: Sequence[str], dest: str, *, old_env: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.deprecated_env = tuple(env_name(o) for o in option_strings[1:]) if old_env else ()

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if option_string in self.option_strings[1:]:
            print(
                f"jobsim: {option_string} is deprecated; use {self.option_strings[0]}",
                file=sys.stderr,
            )
        setattr(namespace, self.dest, values)


class Switch(argparse.BooleanOptionalAction):
    """``--flag`` and ``--no-flag``, off by default: a switch the environment can turn on
    (``$JOBSIM_PROCESSES=true``) needs a way to be turned off on the command line."""

    def __init__(
        self, option_strings: Sequence[str], dest: str, default: Any = False, **kwargs: Any
    ) -> None:
        text = kwargs.get("help")
        super().__init__(option_strings, dest, default=default, **kwargs)
        self.help = text  # without Python 3.11's "(default: ...)": CommandParser adds defaults


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose every flag also reads ``$JOBSIM_<FLAG>``
    (:mod:`jobsim.settings`): the command line wins over the environment, which wins over
    the built-in default; ``--help`` names each flag's variable and default.

    A bad value in the environment is one ``jobsim CMD: error:`` line naming the variable,
    exit status 2. Of a mutually exclusive pair (``run --redis`` / ``--local``), one given on
    the command line sets the other's variable aside; both set in the environment is an error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.builtin: dict[str, Any] = {}
        self.plain_help: dict[str, str | None] = {}

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse ``args`` with defaults from the environment (see the class)."""
        argv = list(sys.argv[1:] if args is None else args)
        found = self._apply_env()
        parsed, extras = super().parse_known_args(argv, namespace)
        for action in self._actions:  # the command line's list replaces the environment's
            listed = action.dest in found.sources and isinstance(action, argparse._AppendAction)
            if listed and self.given(argv, action):
                given = getattr(parsed, action.dest)[len(found.values[action.dest]) :]
                setattr(parsed, action.dest, given)
        self._exclusive(parsed, argv, found)
        return parsed, extras

    def _apply_env(self) -> EnvValues:
        flags = env_flags(self)
        for flag in flags:
            self.builtin.setdefault(flag.action.dest, flag.action.default)
            self.plain_help.setdefault(flag.action.dest, flag.action.help)
        try:
            found = read_env(self)
        except InvalidInputError as exc:
            self.exit(2, f"{self.prog}: error: {exc}\n")
        for line in found.warnings:
            print(line, file=sys.stderr)
        for flag in flags:
            dest = flag.action.dest
            flag.action.default = found.values.get(dest, self.builtin[dest])
            if flag.action.help != argparse.SUPPRESS:
                note = _env_note(
                    flag.env, found.sources.get(dest), self.builtin[dest], found.values.get(dest)
                )
                flag.action.help = f"{self.plain_help[dest] or ''} {note}".strip()
        return found

    def _exclusive(self, parsed: argparse.Namespace, argv: list[str], found: EnvValues) -> None:
        for group in self._mutually_exclusive_groups:
            members = group._group_actions
            from_env = [a for a in members if a.dest in found.sources]
            if not from_env:
                continue
            if any(self.given(argv, a) for a in members):
                for action in from_env:
                    if not self.given(argv, action):
                        setattr(parsed, action.dest, self.builtin[action.dest])
            elif len(from_env) > 1:
                names = " and ".join(f"${found.sources[a.dest]}" for a in from_env)
                flags = " and ".join(a.option_strings[0] for a in from_env)
                self.exit(
                    2, f"{self.prog}: error: {names} are both set, but {flags} exclude each other\n"
                )

    def given(self, argv: Sequence[str], action: argparse.Action) -> bool:
        """Whether ``action``'s flag is on the command line ``argv`` (which argparse accepted,
        so an abbreviation there names one flag only)."""
        for token in argv:
            if token == "--":
                return False
            name = token.split("=", 1)[0]
            if not name.startswith("--") or len(name) < 3:
                continue
            exact = self._option_string_actions.get(name)
            if exact is not None:
                if exact is action:
                    return True
                continue
            if any(o.startswith(name) for o in action.option_strings):
                return True
        return False


def _env_note(env: str, source: str | None, builtin: Any, value: Any) -> str:
    """``[$JOBSIM_PORT, default: 8000]``, or ``[$JOBSIM_PORT=8123 ...]`` when it is set."""
    if source is None:
        text = f"[${env}, default: {_shown(builtin)}]"
    else:
        text = f"[${source}={_shown(value)} overrides the default: {_shown(builtin)}]"
    return text.replace("%", "%%")  # argparse %-formats help strings


def _shown(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
