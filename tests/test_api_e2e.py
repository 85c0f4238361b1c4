"""End to end: a real ``jobsim serve`` process against a real redis-server, stopped with
SIGTERM mid-run and started again; every job submitted over HTTP is accounted for."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from jobsim import JobQueue, connect
from jobsim.localredis import LocalRedis, free_port

pytestmark = pytest.mark.slow

# kind: (task, payload, max_retries, final status, attempts)
KINDS: dict[str, tuple[str, dict[str, Any], int, str, int]] = {
    "work": ("sleep", {"seconds": 0.04}, 3, "completed", 1),
    "fails_once": ("fail", {"times": 1}, 2, "completed", 2),
    "always_fails": ("fail", {}, 1, "failed", 2),
    "permanent": ("fail", {"permanent": True}, 3, "failed", 1),
}
MIX = {"work": 140, "fails_once": 30, "always_fails": 20, "permanent": 10}


def _wait_for(predicate: Any, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert proc.poll() is None, f"jobsim serve exited with {proc.returncode}"
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _serve(redis_url: str, queue: str, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    """Start `jobsim serve` on a free loopback port; return it and its URL once healthy."""
    port = free_port()
    command = [sys.executable, "-m", "jobsim", "serve", "--redis", redis_url, "--queue", queue]
    command += ["--port", str(port), "--workers", "2", "--grace-s", "20", "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if k != "JOBSIM_API_KEY"}
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    _wait_for(lambda: _healthy(url), proc)
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def test_no_job_lost_when_the_service_is_sigterminated_mid_run_and_restarted(
    redis_server: LocalRedis, tmp_path: Path
) -> None:
    """200 jobs submitted over HTTP (some failing once, some dead-lettered), SIGTERM while they
    run, a restart: every job ends completed or failed, with the expected counts and attempts."""
    name = f"e2e{uuid.uuid4().hex[:8]}"
    queue = JobQueue(connect(redis_server.url), name)
    kinds = [kind for kind, n in MIX.items() for _ in range(n)]
    random.Random(7).shuffle(kinds)
    log_path = tmp_path / "serve.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with log_path.open("ab") as log:
            proc, url = _serve(redis_server.url, name, log)
            procs.append(proc)
            ids: dict[str, str] = {}
            rng = random.Random(11)
            with httpx.Client(base_url=url, timeout=10.0) as http:
                for kind in kinds:
                    task, payload, retries, _, _ = KINDS[kind]
                    body = {"task": task, "payload": payload, "max_retries": retries}
                    response = http.post("/submit", json={**body, "priority": rng.randint(0, 9)})
                    assert response.status_code == 200, response.text
                    ids[response.json()["task_id"]] = kind
            assert len(ids) == 200

            _wait_for(lambda: queue.stats().completed + queue.stats().failed >= 30, proc)
            assert _stop(proc) == 0
            stopped = queue.stats()
            assert stopped.active > 0, "the run ended before SIGTERM: nothing was tested"
            assert stopped.processing == 0  # in-flight jobs finished within the grace period
            assert stopped.completed + stopped.failed + stopped.active == 200

            proc, url = _serve(redis_server.url, name, log)
            procs.append(proc)
            with httpx.Client(base_url=url, timeout=10.0) as http:
                counts = http.get("/stats").json()["counts"]
                _wait_for(lambda: _drained(http), proc)
                jobs = {task_id: http.get(f"/status/{task_id}").json() for task_id in ids}
            assert _stop(proc) == 0
    except BaseException:
        print(log_path.read_text(errors="replace"))
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    assert counts["completed"] + counts["failed"] < 200  # the restart found work left to do
    outcomes = Counter(job["status"] for job in jobs.values())
    expected = Counter({"completed": 170, "failed": 30})
    assert outcomes == expected
    for task_id, kind in ids.items():
        _, _, _, status, attempts = KINDS[kind]
        assert (jobs[task_id]["status"], jobs[task_id]["attempts"]) == (status, attempts), kind
    final = queue.stats()
    assert (final.completed, final.failed, final.active) == (170, 30, 0)
    assert final.totals["submitted"] == 200


def _drained(http: httpx.Client) -> bool:
    counts = http.get("/stats").json()["counts"]
    return bool(counts["queued"] + counts["processing"] + counts["retrying"] == 0)
