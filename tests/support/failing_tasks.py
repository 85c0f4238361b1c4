"""Tasks that fail the way a user's task does, registered in the default registry so process
workers can import them (``tests.support.failing_tasks``)."""

from __future__ import annotations

from typing import Any

import jobsim


@jobsim.task("resize_needs_width")
def resize_needs_width(payload: dict[str, Any]) -> dict[str, Any]:
    """Reads a key the payload lacks: fails with ``KeyError('width')`` in this very frame."""
    return {"width": payload["width"]}


def _ping(depth: int) -> int:
    if depth == 0:
        raise ValueError("bottom of a deep stack")
    return _pong(depth - 1) + 1


def _pong(depth: int) -> int:  # two alternating frames: Python does not fold them
    return _ping(depth) + 1


@jobsim.task("deep_failure")
def deep_failure(payload: dict[str, Any]) -> int:
    """Fails 400 frames down: a stack trace far longer than the bound."""
    return _ping(int(payload.get("depth", 400)))
