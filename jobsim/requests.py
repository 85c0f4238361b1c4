"""What a submit may carry, checked before anything is written: task, priority, retries,
payload (one JSON document, valid Unicode, within the size limit) and job id."""

from __future__ import annotations

import json
import os
import re
import reprlib
from dataclasses import dataclass
from typing import Any

from jobsim.config import QueueConfig
from jobsim.errors import (
    InvalidInputError,
    InvalidPayloadError,
    InvalidPriorityError,
    PayloadTooLargeError,
    UnknownTaskError,
)
from jobsim.models import PRIORITY_MAX, PRIORITY_MIN
from jobsim.tasks import TaskRegistry

MAX_RETRIES_LIMIT = 1000
"""Most retries a job may ask for."""
JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
"""What a job id may look like."""


@dataclass(frozen=True)
class JobRequest:
    """One job for :meth:`JobQueue.submit_many`."""

    task: str
    payload: Any = None
    priority: int = 0
    max_retries: int | None = None
    job_id: str | None = None


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
    flat += (job_id, request.task, encoded, priority, retries)
    return job_id


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
