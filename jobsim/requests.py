"""What a submit may carry, checked before anything is written: task, priority, retries,
payload (one JSON document, valid Unicode, within the size limit), job id, and when it is
due (``delay_s`` or ``run_at``)."""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from jobsim.config import QueueConfig
from jobsim.errors import (
    InvalidInputError,
    InvalidPayloadError,
    InvalidPriorityError,
    PayloadTooLargeError,
    UnknownTaskError,
)
from jobsim.models import PRIORITY_MAX, PRIORITY_MIN
from jobsim.scripts import SUBMIT
from jobsim.tasks import TaskRegistry

MAX_RETRIES_LIMIT = 1000
"""Most retries a job may ask for."""
JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
"""What a job id may look like."""
MAX_DELAY_S = 10 * 365 * 86_400.0
"""Longest ``delay_s`` a job may ask for (ten years)."""
MAX_RUN_AT_S = 2**52 / 1e6
"""Latest ``run_at`` (epoch seconds, about the year 2112): Lua keeps µs exact up to 2**53."""
MAX_BATCH_JOBS = 100_000
"""Most jobs one :meth:`JobQueue.submit_many` call takes."""
MAX_BATCH_BYTES = 64 * 1024 * 1024
"""Most encoded payload bytes one :meth:`JobQueue.submit_many` call takes."""


@dataclass(frozen=True)
class JobRequest:
    """One job for :meth:`JobQueue.submit_many`.

    Example:
        >>> JobRequest("resize", {"width": 640}, delay_s=30).delay_s
        30

    ``delay_s`` (seconds from now) or ``run_at`` (epoch seconds of Redis time), not both,
    makes the job ``scheduled`` until it is due; without either it is queued at once.
    """

    task: str
    payload: Any = None
    priority: int = 0
    max_retries: int | None = None
    job_id: str | None = None
    delay_s: float | None = None
    run_at: float | None = None


def validated(
    request: JobRequest, config: QueueConfig, registry: TaskRegistry, flat: list[Any]
) -> str:
    """Check one job request; append its script arguments to ``flat``; return its id.

    Raises:
        InvalidInputError: a subclass naming the first bad field.
    """
    if not isinstance(request.task, str):  # the registry would raise TypeError on a list
        raise UnknownTaskError(
            f"task must be a task name, not {type(request.task).__name__}",
            field="task",
            value=request.task,
        )
    spec = registry.get(request.task)
    priority = request.priority
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidPriorityError(
            f"priority must be an integer, not {type(priority).__name__}",
            field="priority",
            value=priority,
        )
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidPriorityError(
            f"priority {priority} is outside {PRIORITY_MIN}..{PRIORITY_MAX}",
            field="priority",
            value=priority,
        )
    retries = config.default_max_retries if request.max_retries is None else request.max_retries
    if (
        isinstance(retries, bool)
        or not isinstance(retries, int)
        or not 0 <= retries <= MAX_RETRIES_LIMIT
    ):
        raise InvalidInputError(
            f"max_retries must be an integer in 0..{MAX_RETRIES_LIMIT}",
            field="max_retries",
            value=retries,
        )
    encoded = encode_payload(request.payload, config.max_payload_bytes)
    spec.validate(request.payload)
    job_id = request.job_id
    if job_id is None:
        job_id = os.urandom(16).hex()  # 128 random bits, as uuid4().hex, at a fifth the cost
    elif not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise InvalidInputError(
            "job_id must be 1-128 characters of letters, digits, _ . : -",
            field="job_id",
            value=job_id,
        )
    delay_us, run_at_us = due_args(request.delay_s, request.run_at)
    item = {"id": job_id, "task": request.task, "payload": encoded, "priority": priority,
            "max_retries": retries, "delay_us": delay_us, "run_at_us": run_at_us}  # fmt: skip
    flat += [item[name] for name in SUBMIT.items]
    return job_id


PAYLOAD_AT = SUBMIT.items.index("payload") - len(SUBMIT.items)
"""Where the last request's encoded payload sits, counted from the end of ``flat``."""


def batch_args(
    jobs: Iterable[JobRequest], config: QueueConfig, registry: TaskRegistry
) -> tuple[list[str], list[Any]]:
    """Check a batch of job requests: their ids, and SUBMIT's arguments for all of them.

    Raises:
        InvalidInputError: for the first bad job, a repeated ``job_id``, or a batch over
            :data:`MAX_BATCH_JOBS` jobs or :data:`MAX_BATCH_BYTES` of encoded payload.
    """
    flat: list[Any] = []
    ids: list[str] = []
    size = 0
    for request in jobs:
        ids.append(validated(request, config, registry, flat))
        size += len(flat[PAYLOAD_AT])
        if len(ids) > MAX_BATCH_JOBS or size > MAX_BATCH_BYTES:
            raise InvalidInputError(
                f"a batch holds at most {MAX_BATCH_JOBS} jobs and {MAX_BATCH_BYTES} bytes "
                "of payload; split it",
                field="jobs",
                value=len(ids),
            )
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise InvalidInputError("duplicate job_id in one batch", field="job_id", value=dup)
    return ids, flat


@contextmanager
def duplicates_named() -> Iterator[None]:
    """SUBMIT's ``DUPLICATE <id>`` error reply raised as the :class:`InvalidInputError` it
    means: another job already holds that id (nothing was written)."""
    try:
        yield
    except redis.ResponseError as exc:
        if "DUPLICATE" not in str(exc):
            raise
        dup = str(exc).split()[-1]
        raise InvalidInputError(
            f"a job with id {dup!r} already exists", field="job_id", value=dup
        ) from None


def due_args(delay_s: Any, run_at: Any) -> tuple[str, str]:
    """``delay_s`` and ``run_at`` as SUBMIT takes them: µs, or ``''`` when not given.

    Raises:
        InvalidInputError: both given, not a finite number, a negative delay, or out of range.
    """
    if delay_s is not None and run_at is not None:
        raise InvalidInputError(
            "give delay_s or run_at, not both", field="run_at", value=preview(run_at)
        )
    for name, value, top in (("delay_s", delay_s, MAX_DELAY_S), ("run_at", run_at, MAX_RUN_AT_S)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(
                f"{name} must be a number of seconds, not {type(value).__name__}",
                field=name,
                value=preview(value),
            )
        # compare before isfinite: math.isfinite(10**400) raises OverflowError
        if not (0 <= value <= top and math.isfinite(value)):
            raise InvalidInputError(
                f"{name} must be a finite number in 0..{top:.0f} seconds",
                field=name,
                value=preview(value),
            )
    return (
        "" if delay_s is None else str(round(delay_s * 1e6)),
        "" if run_at is None else str(round(run_at * 1e6)),
    )


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def encode_payload(payload: Any, max_bytes: int) -> str:
    """The payload as compact JSON, its text as UTF-8 (not ``\\uXXXX`` escapes).

    Raises:
        InvalidPayloadError: not one JSON document (NaN and infinities included), nested too
            deeply for Python's JSON codec, or text that is not valid Unicode (a lone
            surrogate such as ``"\\ud800"``, which no UTF-8 reader could decode).
        PayloadTooLargeError: encoded size over ``max_bytes``, counted in UTF-8 bytes.
    """
    if payload is None:  # the common no-payload submit skips the encoder
        return "null"
    try:
        encoded = _ENCODER.encode(payload)
        size = len(encoded) if encoded.isascii() else len(encoded.encode("utf-8"))
    except UnicodeEncodeError as exc:  # before ValueError, which it subclasses
        bad = ascii(exc.object[exc.start : exc.end])
        raise InvalidPayloadError(
            f"payload text is not valid Unicode: lone surrogate {bad}",
            field="payload",
            value=preview(payload),
        ) from None
    except RecursionError:
        raise InvalidPayloadError(
            "payload is nested too deeply to encode as JSON",
            field="payload",
            value=preview(payload),
        ) from None
    except (TypeError, ValueError) as exc:  # ValueError: NaN, or an int over Python's digit limit
        raise InvalidPayloadError(
            f"payload is not JSON: {exc}", field="payload", value=preview(payload)
        ) from None
    if size > max_bytes:
        raise PayloadTooLargeError(
            f"payload is {size} bytes encoded; the limit is {max_bytes}",
            field="payload",
            value=size,
        )
    return encoded


def possible_id(job_id: Any) -> bool:
    """Whether some job could have this id (all of it: ``$`` alone lets a final newline by).

    Raises:
        InvalidInputError: ``job_id`` is not a string.
    """
    if not isinstance(job_id, str):
        raise InvalidInputError(
            f"job_id must be a string, not {type(job_id).__name__}",
            field="job_id",
            value=job_id,
        )
    return JOB_ID.fullmatch(job_id) is not None


PREVIEW_REPR = reprlib.Repr()
PREVIEW_REPR.maxlevel, PREVIEW_REPR.maxstring, PREVIEW_REPR.maxother = 4, 120, 120


def preview(value: Any) -> str:
    """A short, printable stand-in for a rejected value; bounded work whatever its size."""
    try:
        return PREVIEW_REPR.repr(value)[:200]
    except Exception:  # an int over the digit limit, a __repr__ that raises
        return f"<{type(value).__name__}>"
