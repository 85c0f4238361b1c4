"""The numbers the service derives from a queue (:mod:`jobsim.api.metrics`): `/metrics` in
Prometheus text, and throughput over a window of Redis time."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from jobsim.api import create_app
from jobsim.api.metrics import throughput
from tests.support.http import FAST, submit, wait_finished


def test_metrics_are_prometheus_text_that_agrees_with_the_queue(make_queue) -> None:
    """`/metrics` parses as Prometheus text; counters equal the queue's totals, depth gauges its
    counts, and the wait and run histograms hold every job finished while it ran."""
    queue = make_queue(FAST)
    with TestClient(create_app(queue, workers=2)) as http:
        ids = [submit(http, task="noop") for _ in range(4)]
        ids.append(submit(http, task="fail", payload={"times": 1}, max_retries=1))
        wait_finished(http, ids)
        response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    q = ("queue", queue.name)
    totals = queue.stats().totals
    for name in ("submitted", "completed", "failed", "retried"):
        assert samples[(f"jobsim_jobs_{name}_total", (q,))] == totals.get(name, 0)
    assert samples[("jobsim_queue_depth", (q, ("status", "completed")))] == 5
    assert samples[("jobsim_job_wait_seconds_count", (q,))] == 5
    runs = {"completed": 5, "retry": 1}
    for outcome, count in runs.items():
        assert samples[("jobsim_job_run_seconds_count", (("outcome", outcome), q))] == count


def test_throughput_counts_jobs_finished_inside_the_window_only(make_queue) -> None:
    """Jobs finished in the window are counted, with rates per second of the window; an
    empty queue has zero throughput."""
    queue = make_queue(FAST)
    assert throughput(queue, 60).completed == 0
    with TestClient(create_app(queue, workers=1)) as http:
        wait_finished(http, [submit(http, task="noop") for _ in range(3)])
    window = throughput(queue, 600)
    assert (window.completed, window.failed) == (3, 0)
    assert window.completed_per_s == 3 / 600
