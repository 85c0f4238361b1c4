"""What a failed attempt leaves in the job record: a one-line error and, if the task raised,
its stack trace, bounded (the job hash's ``x<n>`` and ``t<n>`` fields)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from jobsim.scripts import TRACEBACK_CHARS

ERROR_CHARS = 2000
"""Longest one-line error kept per attempt."""


@dataclass(frozen=True)
class Failure:
    """Why an attempt failed: the one-line error and, if the task raised, its stack trace.

    Example:
        >>> try:
        ...     {}["width"]
        ... except KeyError as exc:
        ...     failure = Failure.of(exc)
        >>> failure.error
        "KeyError: 'width'"
        >>> failure.traceback.splitlines()[0]
        'Traceback (most recent call last):'
    """

    error: str
    traceback: str = ""

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        """The failure of a task that raised ``exc``."""
        return cls(describe(exc), trace(exc))


def describe(exc: BaseException) -> str:
    """``Type: message``, at most :data:`ERROR_CHARS` characters."""
    return sendable(f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])


def trace(exc: BaseException) -> str:
    """The exception's stack trace, its last :data:`TRACEBACK_CHARS` characters (the task's
    own frames are the innermost, so they are the ones kept; a cut head starts with ``…``)."""
    text = sendable("".join(traceback.format_exception(exc)))
    if len(text) > TRACEBACK_CHARS:
        text = "…" + text[-(TRACEBACK_CHARS - 1) :]
    return text


def sendable(text: str) -> str:
    """The text with any lone surrogate escaped: redis-py cannot send one, and a failure it
    cannot send would leave the job processing until its lease expired."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
