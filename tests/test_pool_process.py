"""Workers in a supervised child process (:mod:`jobsim.pool_process`), as ``jobsim serve``
runs them on a real Redis: they complete jobs, a killed child is seen by ``/health`` and
restarted with its leases given back, a shutdown leaves no process behind, and the embedded
backend keeps its workers in-process. Real redis-server only: fakeredis cannot be shared."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from jobsim import JobQueue, connect
from jobsim.api import create_app
from jobsim.cli import parse
from jobsim.cli_commands import worker_process_wanted
from jobsim.errors import InvalidInputError, JobsimError
from jobsim.localredis import LocalRedis, free_port
from jobsim.pool_process import PoolProcess
from tests.support.http import FAST, job_status, submit, until, wait_finished


@pytest.fixture
def queue(redis_server: LocalRedis) -> Iterator[JobQueue]:
    q = JobQueue(connect(redis_server.url), f"pp{uuid.uuid4().hex[:8]}", FAST)
    yield q
    q.delete()


def _gone(procs: list[psutil.Process], timeout_s: float = 30.0) -> list[psutil.Process]:
    """The processes still running (zombies count as gone) after up to ``timeout_s``."""

    def running() -> list[psutil.Process]:
        left = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    left.append(p)
            except psutil.NoSuchProcess:
                pass
        return left

    with contextlib.suppress(AssertionError):
        until(lambda: not running(), timeout_s)
    return running()


def test_the_workers_run_in_a_child_process_and_complete_submitted_jobs(queue) -> None:
    """With ``worker_process=True`` the registry's workers live in another process than the
    service, and they complete what is submitted."""
    with TestClient(create_app(queue, workers=2, worker_process=True)) as http:
        pool = http.app.state.pool  # type: ignore[attr-defined]
        ids = [submit(http, task="noop") for _ in range(10)]
        assert all(j["status"] == "completed" for j in wait_finished(http, ids))
        health = until(lambda: (r := http.get("/health")).status_code == 200 and r.json())
        assert health["workers_alive"] == health["workers_expected"] == 2
        workers = http.get("/stats").json()["workers"]
        assert sorted(w["id"] for w in workers) == sorted(pool.worker_ids)
        assert {w["pid"] for w in workers} == {pool.pid} and pool.pid != os.getpid()
    assert queue.workers() == []  # the child deregistered its workers on the way out


def test_a_killed_worker_process_shows_in_health_and_its_running_job_runs_again(queue) -> None:
    """SIGKILL of the child: ``/health`` answers 503 until a new child heartbeats; the job it
    was running is given back at once (the attempt counts, as a crash) and completes."""
    with TestClient(create_app(queue, workers=1, worker_process=True)) as http:
        pool = http.app.state.pool  # type: ignore[attr-defined]
        until(lambda: http.get("/health").status_code == 200)
        task_id = submit(http, task="sleep", payload={"seconds": 0.5})
        until(lambda: job_status(http, task_id)["status"] == "processing")
        first = pool.pid
        pool.kill()
        down = until(lambda: (r := http.get("/health")).status_code == 503 and r.json())
        assert down["workers_alive"] == 0 and down["status"] == "degraded"
        until(lambda: http.get("/health").status_code == 200)
        assert pool.pid != first and pool.restarts == 1
        (job,) = wait_finished(http, [task_id])
    assert (job["status"], job["attempts"]) == ("completed", 2)
    assert queue.status(task_id).attempt_log[0].outcome == "crashed"


def test_an_in_flight_job_in_the_worker_process_finishes_within_the_grace_period(queue) -> None:
    """Stopping the service lets the child's running job finish within the grace period."""
    with TestClient(create_app(queue, workers=1, grace_s=30, worker_process=True)) as http:
        task_id = submit(http, task="sleep", payload={"seconds": 0.3})
        until(lambda: job_status(http, task_id)["status"] == "processing")
    job = queue.status(task_id)
    assert (job.status, job.attempts) == ("completed", 1)


def test_a_worker_process_outlasting_its_parent_stops_by_itself(queue) -> None:
    """A child whose parent is gone (SIGKILL of ``jobsim serve``) stops on its own instead of
    leasing jobs nobody supervises."""
    port = free_port()
    serve = subprocess.Popen(
        _serve(queue, port),
        stdout=subprocess.DEVNULL,
    )
    try:
        until(lambda: _health(port) == 200, 60)
        children = psutil.Process(serve.pid).children(recursive=True)
        pids = {w.pid for w in queue.workers()}
        assert pids and pids <= {c.pid for c in children} and serve.pid not in pids
        ids = [httpx.post(f"http://127.0.0.1:{port}/submit", json={"task": "noop"}) for _ in "ab"]
        until(lambda: queue.stats().totals.get("completed", 0) == len(ids))
        serve.send_signal(signal.SIGKILL)
        serve.wait(30)
        assert _gone(children) == []
    finally:
        serve.kill()
        serve.wait()


def test_serve_stops_its_worker_process_and_leaves_no_process_behind(queue) -> None:
    """SIGTERM of ``jobsim serve``: it stops its worker process gracefully and every
    process it started is gone when it exits."""
    port = free_port()
    serve = subprocess.Popen(
        _serve(queue, port),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        until(lambda: _health(port) == 200, 60)
        children = psutil.Process(serve.pid).children(recursive=True)
        assert any(c.pid in {w.pid for w in queue.workers()} for c in children)
        serve.send_signal(signal.SIGTERM)
        out, _ = serve.communicate(timeout=60)
        assert serve.returncode == 0 and "in a worker process" in out
        assert _gone(children, 10) == []
        assert queue.workers() == []
    finally:
        serve.kill()
        serve.wait()


def _serve(queue: JobQueue, port: int) -> list[str]:
    """``jobsim serve`` with two workers (in a worker process: the default on a real Redis)."""
    kw = queue.client.connection_pool.connection_kwargs
    url = f"redis://{kw['host']}:{kw['port']}/0"
    flags = ["--queue", queue.name, "--port", str(port), "--workers", "2", "--log-level", "warning"]
    return [sys.executable, "-m", "jobsim", "serve", "--redis", url, *flags]


def _health(port: int) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code
    except httpx.HTTPError:
        return 0


# --- which backend gets a worker process -----------------------------------------------------


def test_the_embedded_backend_keeps_its_workers_in_process() -> None:
    """fakeredis lives in the service's process: a worker process is refused, and ``auto``
    keeps the workers in-process there."""
    embedded = JobQueue(connect(), "embedded")
    with pytest.raises(InvalidInputError, match="embedded backend"):
        create_app(embedded, workers=2, worker_process=True)
    with pytest.raises(InvalidInputError, match="embedded backend"):
        PoolProcess(embedded, 2)
    assert worker_process_wanted(parse(["serve"]), embedded) is False
    with pytest.raises(JobsimError, match="needs --redis"):
        worker_process_wanted(parse(["serve", "--worker-process", "on"]), embedded)


def test_auto_puts_thread_workers_on_a_real_redis_in_a_worker_process(queue) -> None:
    """``--worker-process auto`` (the default) is on for thread workers on a real Redis, off
    with ``--processes`` (already processes) or ``off``, and ``on`` with them is an error."""

    def wanted(*flags: str) -> bool:
        args: argparse.Namespace = parse(["serve", *flags])
        return worker_process_wanted(args, queue)

    assert wanted() is True
    assert wanted("--worker-process", "off") is False
    assert wanted("--processes") is False
    assert wanted("--workers", "0") is False
    with pytest.raises(JobsimError, match="processes already"):
        wanted("--processes", "--worker-process", "on")
    with pytest.raises(InvalidInputError, match="already processes"):
        create_app(queue, workers=1, mode="process", worker_process=True)


def test_the_worker_process_choice_can_come_from_the_environment(queue, monkeypatch) -> None:
    """``$JOBSIM_WORKER_PROCESS`` sets ``--worker-process`` (a flag on the command line wins),
    and a value outside auto/on/off is a usage error."""
    monkeypatch.setenv("JOBSIM_WORKER_PROCESS", "off")
    assert worker_process_wanted(parse(["serve"]), queue) is False
    assert worker_process_wanted(parse(["serve", "--worker-process", "on"]), queue) is True
    monkeypatch.setenv("JOBSIM_WORKER_PROCESS", "maybe")
    with pytest.raises(SystemExit):
        parse(["serve"])


def test_a_program_that_exits_without_stopping_its_worker_process_leaves_none_behind(
    queue,
) -> None:
    """``PoolProcess.start`` registers its stop at exit: a program that forgets ``stop()``
    still exits, and its worker process with it."""
    kw = queue.client.connection_pool.connection_kwargs
    program = (
        "import sys\n"
        "from jobsim import JobQueue, connect\n"
        "from jobsim.pool_process import PoolProcess\n"
        f"pool = PoolProcess(JobQueue(connect('redis://{kw['host']}:{kw['port']}/0'), "
        f"{queue.name!r}), 2)\n"
        "pool.start()\n"
        "print(pool.pid, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    child = int(done.stdout.split()[0])
    assert not psutil.pid_exists(child) or _gone([psutil.Process(child)]) == []
    assert queue.workers() == []
