"""How jobsim logs: through :mod:`logging`, under ``jobsim.*`` loggers, each record about a job
carrying its ``job_id``, ``task``, ``attempt`` and ``worker_id`` (as ``extra`` attributes),
and a JSON formatter for log shippers.

Loggers: ``jobsim.worker`` (each job's start, end and failure, with the failure's traceback),
``jobsim.threads`` and ``jobsim.procs`` (supervisors), ``jobsim.pool``, ``jobsim.periodic``.
jobsim adds no handler of its own: the application decides where records go.
:func:`configure_logging` is what ``jobsim worker --log-format json`` (or
``$JOBSIM_LOG_FORMAT=json``) calls; worker processes call it again from the environment they
inherit, so their records come out the same way.

Example:
    >>> import logging
    >>> record = logging.makeLogRecord({"msg": "job failed", "job_id": "a1", "attempt": 2})
    >>> json.loads(JsonFormatter().format(record))["job_id"]
    'a1'

The formatter is twenty lines of our own rather than python-json-logger: the core takes no
dependency for it (worker processes need it too), and it writes exactly the fields a shipper
indexes, one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Literal

LOG_FORMAT_ENV = "JOBSIM_LOG_FORMAT"
"""Environment variable choosing the log format (``text`` or ``json``) of ``jobsim worker``
and of the worker processes it starts."""
LOG_LEVEL_ENV = "JOBSIM_LOG_LEVEL"
"""Environment variable holding the level of the ``jobsim`` loggers (default ``info``)."""
JOB_FIELDS = ("job_id", "task", "attempt", "worker_id")
"""The attributes every record about a job carries."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LogFormat = Literal["text", "json"]
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JobLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose every record carries one job's id, task, attempt and worker.

    Example:
        >>> JobLog(logging.getLogger("jobsim.worker"), "a1", "resize", 1, "w-0").extra
        {'job_id': 'a1', 'task': 'resize', 'attempt': 1, 'worker_id': 'w-0'}
    """

    def __init__(
        self, logger: logging.Logger, job_id: str, task: str, attempt: int, worker_id: str
    ) -> None:
        extra = {"job_id": job_id, "task": task, "attempt": attempt, "worker_id": worker_id}
        super().__init__(logger, extra)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, every ``extra`` attribute (``job_id``, ``task``, ``attempt``, ...) and, for a
    record with an exception, ``traceback``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message [job=... task=... attempt=...]``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        job = [f"{k}={getattr(record, k)}" for k in JOB_FIELDS if hasattr(record, k)]
        if not job:
            return text
        head, sep, rest = text.partition("\n")  # the job fields go on the message's line
        return f"{head} [{' '.join(job)}]{sep}{rest}"


def configure_logging(fmt: LogFormat = "text", level: str = "info") -> None:
    """Send the ``jobsim`` loggers' records to stderr in ``fmt``, at ``level`` and above.

    Replaces a handler this function added before (so calling it twice does not double
    lines) and leaves every other handler alone.

    Raises:
        ValueError: an unknown format or level.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    logger = logging.getLogger("jobsim")
    for handler in [h for h in logger.handlers if getattr(h, "jobsim_configured", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.jobsim_configured = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(numeric)
    os.environ[LOG_FORMAT_ENV] = fmt  # worker processes started from here inherit both
    os.environ[LOG_LEVEL_ENV] = level


def configure_from_env() -> None:
    """:func:`configure_logging` as ``$JOBSIM_LOG_FORMAT`` says; nothing if it is unset."""
    fmt = os.environ.get(LOG_FORMAT_ENV)
    if fmt in ("text", "json"):
        configure_logging(fmt, os.environ.get(LOG_LEVEL_ENV, "info"))  # type: ignore[arg-type]
