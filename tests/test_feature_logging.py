"""Worker logging (:mod:`jobsim.logs`): records under ``jobsim.*`` carrying each job's id,
task, attempt and worker; the JSON formatter; and ``jobsim worker --log-format json`` with
process workers, whose records come out as JSON too."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import tests.support.failing_tasks  # noqa: F401  (registers the tasks)
from jobsim import JobQueue, WorkerPool, connect
from jobsim.localredis import LocalRedis
from jobsim.logs import JOB_FIELDS, JobLog, JsonFormatter, TextFormatter, configure_logging
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


def test_every_record_about_a_job_names_the_job_task_and_attempt(make_queue, caplog) -> None:
    """A real run, one job that completes and one failing twice: each record of
    `jobsim.worker` about them carries job_id, task, attempt and worker_id, and each failure
    record carries the exception (its traceback) with the task's own frame."""
    queue = make_queue()
    ok = queue.submit("noop", job_id="ok-job")
    bad = queue.submit("resize_needs_width", {}, max_retries=1, job_id="bad-job")
    with caplog.at_level(logging.DEBUG, logger="jobsim"), WorkerPool(queue, concurrency=1):
        queue.wait_until_drained(timeout_s=30)
    records = [r for r in caplog.records if r.name == "jobsim.worker" and hasattr(r, "job_id")]
    by_job = {job: [r for r in records if r.job_id == job] for job in (ok, bad)}
    assert by_job[ok][0].getMessage() == "job started"
    assert by_job[ok][-1].getMessage().startswith("job completed in ")
    failures = [r for r in by_job[bad] if r.levelno == logging.WARNING]
    assert [r.attempt for r in failures] == [1, 2]
    for record in records:
        assert all(getattr(record, k) is not None for k in JOB_FIELDS)
        assert record.task == ("noop" if record.job_id == ok else "resize_needs_width")
    assert failures[0].exc_info is not None and failures[0].exc_info[0] is KeyError
    assert "in resize_needs_width" in logging.Formatter().formatException(failures[0].exc_info)


def test_the_json_formatter_writes_one_object_per_record_with_the_job_fields() -> None:
    """Time, level, logger, message, the job's fields and the traceback, as one JSON line."""
    logger = logging.getLogger("jobsim.test")
    try:
        raise KeyError("width")
    except KeyError as exc:
        record = logger.makeRecord(
            "jobsim.test", logging.WARNING, __file__, 1, "job failed: %s", ("x",),
            (type(exc), exc, exc.__traceback__),
            extra={"job_id": "a1", "task": "resize", "attempt": 2, "worker_id": "w-0"},
        )  # fmt: skip
    line = JsonFormatter().format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["message"] == "job failed: x" and doc["level"] == "warning"
    assert (doc["job_id"], doc["task"], doc["attempt"], doc["worker_id"]) == (
        "a1",
        "resize",
        2,
        "w-0",
    )
    assert doc["logger"] == "jobsim.test" and doc["time"].endswith("Z")
    assert doc["traceback"].rstrip().endswith("KeyError: 'width'")
    text = TextFormatter().format(record)
    assert text.splitlines()[0].endswith("[job_id=a1 task=resize attempt=2 worker_id=w-0]")


def test_the_adapter_keeps_the_job_fields_beside_a_call_s_own_extra() -> None:
    """A record logged through JobLog with more `extra` keeps both."""
    adapter = JobLog(logging.getLogger("jobsim.test"), "a1", "t", 1, "w")
    _, kwargs = adapter.process("m", {"extra": {"run_s": 0.5}})
    assert kwargs["extra"] == {"job_id": "a1", "task": "t", "attempt": 1, "worker_id": "w",
                               "run_s": 0.5}  # fmt: skip


def test_configure_logging_refuses_an_unknown_format_or_level(monkeypatch) -> None:
    """A typo is a clear error, not silence."""
    monkeypatch.setattr(os, "environ", dict(os.environ))
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log level"):
        configure_logging("json", "loud")


def test_jobsim_worker_with_json_logs_from_worker_processes(
    redis_server: LocalRedis, tmp_path: Path
) -> None:
    """`JOBSIM_LOG_FORMAT=json jobsim worker --processes`: the failure of a job run in a worker
    process is logged as one JSON line with its job id, task, attempt and traceback."""
    name = f"log{uuid.uuid4().hex[:8]}"
    queue = JobQueue(connect(redis_server.url), name)
    job_id = queue.submit("resize_needs_width", {}, max_retries=0)
    env = {**os.environ, "JOBSIM_LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "jobsim", "worker", "--redis", redis_server.url,
               "--queue", name, "--processes", "--concurrency", "1",
               "--import", "tests.support.failing_tasks"]  # fmt: skip
    err = tmp_path / "stderr.log"
    with err.open("wb") as sink:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=sink)
        try:
            wait_until(lambda: queue.stats().failed == 1, timeout_s=60)
            wait_until(lambda: job_id in err.read_text(), timeout_s=10)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    lines = [json.loads(line) for line in err.read_text().splitlines() if line.startswith("{")]
    [failure] = [doc for doc in lines if doc.get("job_id") == job_id]
    assert failure["task"] == "resize_needs_width" and failure["attempt"] == 1
    assert failure["logger"] == "jobsim.worker" and failure["level"] == "warning"
    assert "in resize_needs_width" in failure["traceback"]
