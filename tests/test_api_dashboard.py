"""The dashboard's server side: the page (open, every asset served by the package), the live
feed `/events` and the teaching scenarios behind the API key, and each scenario playing out
on a real queue to the end its description promises. The page in a browser is
tests/test_browser.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter

import httpx
import pytest
from fastapi.testclient import TestClient

from jobsim import JobQueue, Lease, QueueConfig, WorkerPool, connect
from jobsim.api import create_app
from jobsim.api.events import snapshot
from jobsim.api.scenarios import SCENARIOS
from jobsim.localredis import free_port
from jobsim.models import JobStatus
from tests.support.http import FAST
from tests.support.waiting import wait_until

KEY = "dash-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def http() -> TestClient:
    queue = JobQueue(connect(), f"dash{uuid.uuid4().hex[:8]}")
    return TestClient(create_app(queue, workers=0, api_key=KEY))


def _events(http: TestClient, **query: str) -> list[tuple[str, dict[str, object]]]:
    found = []
    with http.stream("GET", "/events", params=query, headers=AUTH) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def test_the_page_is_open_and_names_only_assets_the_package_serves(http) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert len(assets) == 5  # icon, uPlot css and js, dashboard css and js
    assert not re.search(r'(?:src|href)="https?://', page.text)
    for asset in assets:
        assert http.get(asset).status_code == 200, asset
    for scenario in SCENARIOS.values():
        assert f'data-scenario="{scenario.name}"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # no inline script, so the policy needs no exception


def test_the_feed_and_the_scenarios_need_the_key(http) -> None:
    assert http.get("/events").status_code == 401
    assert http.get("/scenarios").status_code == 401
    assert http.post("/scenarios/demo").status_code == 401
    assert http.get("/stats", headers=AUTH).json()["totals"].get("submitted", 0) == 0


def test_the_feed_sends_a_snapshot_at_once_then_every_interval_and_ends(http) -> None:
    """With `interval_s=0.2, max_s=1`: several snapshots whose counts are the queue's."""
    http.post("/submit", json={"task": "noop"}, headers=AUTH)
    events = _events(http, interval_s="0.2", max_s="1")
    names = [name for name, _ in events]
    assert 2 <= len(names) <= 6 and set(names) == {"snapshot"}
    first = events[0][1]
    assert first["counts"] == {s.value: int(s is JobStatus.QUEUED) for s in JobStatus}
    assert first["totals"] == {"submitted": 1}
    assert first["queue"] == http.app.state.queue.name  # type: ignore[attr-defined]


def test_the_feed_rejects_an_unknown_query_parameter(http) -> None:
    response = http.get("/events", params={"interval": "1"}, headers=AUTH)
    assert response.status_code == 422 and response.json()["field"] == "interval"


def test_scenarios_are_listed_and_an_unknown_one_is_a_422_that_writes_nothing(http) -> None:
    listed = http.get("/scenarios", headers=AUTH).json()
    assert [s["name"] for s in listed] == list(SCENARIOS)
    response = http.post("/scenarios/nope", headers=AUTH)
    assert response.status_code == 422 and response.json()["field"] == "name"
    assert http.get("/stats", headers=AUTH).json()["counts"]["queued"] == 0


def test_the_demo_scenario_submits_its_described_mix(http) -> None:
    body = http.post("/scenarios/demo", headers=AUTH).json()
    assert body["submitted"] == len(body["task_ids"]) == 50
    queue: JobQueue = http.app.state.queue  # type: ignore[attr-defined]
    jobs = queue.get_many(body["task_ids"])
    assert Counter(j.task for j in jobs) == {"sleep": 35, "flaky": 12, "fail": 3}
    assert sum(j.priority == 9 for j in jobs) == 5


def test_the_poison_job_scenario_dead_letters_only_the_poison_job(make_queue) -> None:
    """The always-failing job ends in the dead letters after 1 + 4 retries; the 20 others
    complete once each."""
    queue = make_queue(FAST)
    ids = SCENARIOS["poison-job"].start(queue)
    with WorkerPool(queue, concurrency=4):
        stats = queue.wait_until_drained(timeout_s=60)
    assert (stats.completed, stats.failed) == (20, 1)
    (poison,) = queue.dead_letters()
    assert poison.id == ids[0] and poison.attempts == 5
    assert all(j.attempts == 1 for j in queue.get_many(ids[1:]))


def test_the_retry_storm_retries_each_job_until_it_succeeds_or_has_had_seven(make_queue) -> None:
    """Every job ends; a dead letter has had exactly 7 attempts, all failed; the number of dead
    letters is in the binomial band of n=60, p=0.7^7 (mean 4.9, sd 2.1; 0 to 15 is > 4.5 sd)."""
    queue = make_queue(FAST)
    ids = SCENARIOS["retry-storm"].start(queue)
    with WorkerPool(queue, concurrency=4):
        stats = queue.wait_until_drained(timeout_s=60)
    assert stats.completed + stats.failed == 60
    for job in queue.get_many(ids):
        outcomes = [a.outcome.value for a in job.attempt_log]
        if job.status is JobStatus.FAILED:
            assert outcomes == ["retry"] * 6 + ["failed"]
        else:
            assert outcomes == ["retry"] * (job.attempts - 1) + ["completed"]
    assert 0 <= stats.failed <= 15


def test_the_worker_crash_scenario_redelivers_each_crashed_job_after_its_lease(
    make_queue,
) -> None:
    """Each crash job's first lease expires (its worker vanished); a second attempt completes."""
    queue = make_queue(QueueConfig(lease=Lease(duration_s=0.5), retry=FAST.retry))
    ids = SCENARIOS["worker-crash"].start(queue)
    with WorkerPool(queue, concurrency=4):
        stats = queue.wait_until_drained(timeout_s=60)
    assert (stats.completed, stats.failed) == (13, 0)
    for job in queue.get_many(ids[:3]):
        assert [a.outcome.value for a in job.attempt_log] == ["expired", "completed"]
        assert job.redeliveries == 1


def test_a_snapshot_lists_dead_letters_with_their_attempts_and_the_wait(make_queue) -> None:
    queue = make_queue(FAST)
    queue.submit("fail", {}, max_retries=1)
    queue.submit("noop", None)
    with WorkerPool(queue, concurrency=2):
        queue.wait_until_drained(timeout_s=30)
    state = snapshot(queue, window_s=60)
    assert state["dead_letters"]["total"] == 1  # type: ignore[index]
    (dead,) = state["dead_letters"]["jobs"]  # type: ignore[index]
    assert [a["outcome"] for a in dead["attempt_log"]] == ["retry", "failed"]
    assert state["wait"]["jobs"] == 2 and state["wait"]["mean_s"] >= 0  # type: ignore[index]
    assert state["running"] == []


def test_jobsim_dashboard_serves_a_queue_without_running_its_jobs(redis_server) -> None:
    """`jobsim dashboard --redis URL` shows the queue at `/` and starts no workers: a
    scenario's jobs stay queued for the queue's own workers."""
    name = f"cli{uuid.uuid4().hex[:8]}"
    port = free_port()
    command = [sys.executable, "-m", "jobsim", "dashboard", "--redis", redis_server.url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSIM_")}
    proc = subprocess.Popen(
        [*command, "--queue", name, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or _answers(f"{url}/health"), timeout_s=30)
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert name in httpx.get(f"{url}/").text
        assert httpx.post(f"{url}/scenarios/poison-job").json()["submitted"] == 21
        stats = httpx.get(f"{url}/stats").json()
        assert stats["counts"]["queued"] == 21 and stats["workers"] == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_snapshot_shows_scheduled_jobs_and_a_paused_queue(make_queue) -> None:
    """Statuses the queue reports (here `scheduled`) and its paused flag reach the feed."""
    queue = make_queue()
    queue.submit("noop", None, delay_s=3600)
    assert snapshot(queue)["paused"] is False
    queue.pause()
    state = snapshot(queue)
    assert state["paused"] is True
    assert state["counts"]["scheduled"] == 1  # type: ignore[index]
    assert state["counts"] == queue.stats().by_status()


def test_a_wrong_method_on_a_dashboard_route_is_a_405_naming_the_allowed_one(http) -> None:
    for method, path, allowed in (
        ("PUT", "/events", "GET"),
        ("GET", "/scenarios/demo", "POST"),
        ("POST", "/", "GET"),
    ):
        response = http.request(method, path, headers=AUTH)
        assert response.status_code == 405 and response.headers["allow"] == allowed, path
