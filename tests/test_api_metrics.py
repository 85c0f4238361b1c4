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
    assert samples[("jobsim_jobs_retained", (q, ("status", "completed")))] == 5
    assert ("jobsim_queue_depth", (q, ("status", "completed"))) not in samples  # not active
    assert samples[("jobsim_queue_depth", (q, ("status", "queued")))] == 0
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


def test_http_requests_are_counted_and_timed_per_route_template_and_status(make_queue) -> None:
    """Three submits and two unknown ids: counted under the route templates with their
    statuses (200, 404), one latency observation each; the process collector is there too."""
    queue = make_queue(FAST)
    with TestClient(create_app(queue, workers=0)) as http:
        for _ in range(3):
            submit(http, task="noop")
        for missing in ("nope1", "nope2"):
            assert http.get(f"/status/{missing}").status_code == 404
        assert http.get("/no/such/path").status_code == 404
        text = http.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def labels(route: str, status: str, method: str) -> tuple[tuple[str, str], ...]:
        return (("method", method), ("route", route), ("status", status))

    assert samples[("jobsim_http_requests_total", labels("/submit", "200", "POST"))] == 3
    assert samples[("jobsim_http_requests_total", labels("/status/{task_id}", "404", "GET"))] == 2
    assert samples[("jobsim_http_requests_total", labels("unmatched", "404", "GET"))] == 1
    key = ("jobsim_http_request_duration_seconds_count", labels("/submit", "200", "POST"))
    assert samples[key] == 3
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)
