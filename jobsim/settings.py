"""Settings from the environment: every flag of every ``jobsim`` command can also be set as
``$JOBSIM_<FLAG>`` (``--read-timeout-s``: ``$JOBSIM_READ_TIMEOUT_S``; ``--redis``:
``$JOBSIM_REDIS_URL``, the variable :func:`jobsim.connect` reads), read with pydantic-settings.

The flags are declared once, in argparse. :func:`read_env` derives from one command's parser
a settings model whose fields are that command's flags, each read from its variable and
checked by the flag's own argparse type and choices, so a value in the environment is held
to the same rules as one on the command line. The parser (:class:`jobsim.cli_args.
CommandParser`) takes what it finds as defaults: the command line wins over the environment,
which wins over the built-in default.

Values: a switch takes true or false (also 1/0, yes/no, on/off); a repeatable flag takes a
list separated by commas (``JOBSIM_IMPORT=app.tasks,app.more``; ``--grid`` by semicolons,
since its values hold commas); an empty variable counts as unset.

    >>> import argparse, os
    >>> parser = argparse.ArgumentParser(prog="demo")
    >>> _ = parser.add_argument("--port", type=int, default=8000)
    >>> os.environ["JOBSIM_PORT"] = "8123"
    >>> read_env(parser).values
    {'port': 8123}
    >>> os.environ["JOBSIM_PORT"] = "eighty"
    >>> read_env(parser)
    Traceback (most recent call last):
    ...
    jobsim.errors.InvalidInputError: $JOBSIM_PORT='eighty': invalid int value: 'eighty'
    >>> del os.environ["JOBSIM_PORT"]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError, create_model
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jobsim.connection import ENV_URL
from jobsim.errors import InvalidInputError

ENV_PREFIX = "JOBSIM_"
RENAMED = {"--redis": ENV_URL}
"""Flags whose variable is not ``$JOBSIM_<FLAG>``: the Redis URL keeps its long-standing name."""
SEPARATORS = {"--grid": ";"}
"""A repeatable flag's list separator in the environment, where it is not a comma."""


def env_name(option: str) -> str:
    """The variable of a flag: ``--read-timeout-s`` -> ``JOBSIM_READ_TIMEOUT_S``."""
    return RENAMED.get(option, ENV_PREFIX + option.lstrip("-").replace("-", "_").upper())


@dataclass(frozen=True)
class EnvFlag:
    """One flag of a command and the variables it is read from.

    Attributes:
        action: the argparse action.
        env: its variable.
        deprecated: older variables still read, with a warning (an action lists them as
            ``deprecated_env``, e.g. ``$JOBSIM_CONCURRENCY`` for ``--workers``).
    """

    action: argparse.Action
    env: str
    deprecated: tuple[str, ...] = ()


def env_flags(parser: argparse.ArgumentParser) -> list[EnvFlag]:
    """Every flag of ``parser`` that takes a value or is a switch (not ``--help``,
    ``--version`` or a positional argument)."""
    found = []
    for action in parser._actions:
        long = [o for o in action.option_strings if o.startswith("--")]
        if not long or action.dest in ("help", "version"):
            continue
        found.append(
            EnvFlag(action, env_name(long[0]), tuple(getattr(action, "deprecated_env", ())))
        )
    return found


@dataclass(frozen=True)
class EnvValues:
    """What the environment says about one command's flags.

    Attributes:
        values: ``dest -> value`` of every flag set in the environment, converted.
        sources: ``dest -> the variable it came from``.
        warnings: one line per deprecated variable used.
    """

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_env(parser: argparse.ArgumentParser) -> EnvValues:
    """The values the environment gives ``parser``'s flags.

    Raises:
        InvalidInputError: a variable's value is not one its flag accepts (``field`` is the
            variable, ``value`` what it holds).
    """
    flags = env_flags(parser)
    if not flags:
        return EnvValues()
    names: dict[str, tuple[EnvFlag, str]] = {}
    fields: dict[str, Any] = {}
    for i, flag in enumerate(flags):
        for j, env in enumerate((flag.env, *flag.deprecated)):
            key = f"f{i}_{j}"
            names[key] = (flag, env)
            fields[key] = (
                _annotation(flag.action),
                Field(None, validation_alias=AliasChoices(env)),
            )
    model = create_model("CommandSettings", __base__=_Settings, **fields)
    try:
        settings = model()
    except ValidationError as exc:
        raise _error(exc) from None
    found = EnvValues()
    for key in sorted(settings.model_fields_set, key=lambda k: k.endswith("_0"), reverse=True):
        flag, env = names[key]
        dest = flag.action.dest
        if env != flag.env:
            found.warnings.append(f"jobsim: ${env} is deprecated; use ${flag.env}")
        if dest not in found.values:  # the current name wins over a deprecated one
            found.values[dest] = getattr(settings, key)
            found.sources[dest] = env
    return found


class _Settings(BaseSettings):
    """The base of each command's model: the environment only (no ``.env`` file)."""

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True, validate_default=False)


def _annotation(action: argparse.Action) -> Any:
    if action.nargs == 0 and (
        isinstance(action.const, bool) or isinstance(action, argparse.BooleanOptionalAction)
    ):
        return bool  # a switch: pydantic reads true/false, 1/0, yes/no, on/off
    check = _checker(action)
    if isinstance(action, argparse._AppendAction):
        separator = SEPARATORS.get(action.option_strings[0], ",")

        def items(raw: Any) -> Any:
            parts = raw.split(separator) if isinstance(raw, str) else raw
            return [check(part) for part in parts if part.strip()]

        return Annotated[list[Any], NoDecode, BeforeValidator(items)]
    return Annotated[Any, BeforeValidator(check)]


def _checker(action: argparse.Action) -> Callable[[Any], Any]:
    """The flag's own argparse type and choices, with argparse's messages, as a validator."""
    convert = action.type if callable(action.type) else str
    kind = getattr(convert, "__name__", repr(convert))

    def check(raw: Any) -> Any:
        text = raw.strip() if isinstance(raw, str) else raw
        try:
            value = convert(text)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(str(exc)) from None
        except (TypeError, ValueError):
            raise ValueError(f"invalid {kind} value: {text!r}") from None
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(repr(c) for c in action.choices)
            raise ValueError(f"invalid choice: {value!r} (choose from {choices})")
        return value

    return check


def _error(exc: ValidationError) -> InvalidInputError:
    first = exc.errors()[0]
    env = str(first["loc"][0]).upper()  # pydantic-settings reports the name lower-cased
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "bool_parsing":
        message = "expected true or false (or 1/0, yes/no, on/off)"
    raw = first.get("input")
    return InvalidInputError(f"${env}={raw!r}: {message}", field=env, value=raw)
