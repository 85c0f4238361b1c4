"""The service in a real headless Chromium (Debian's, driven by Selenium): the docs pages and
the dashboard render from the package's own files, with no request leaving 127.0.0.1.

Skipped when Chromium, chromedriver or selenium is missing, unless
``JOBSIM_REQUIRE_BROWSER=1`` (``.ci/run``), which makes that a failure. Screenshots go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jobsim import JobQueue, connect
from jobsim.api import create_app
from tests.support.browser import (
    RequestLog,
    chromium_or_skip,
    screenshot,
    serve_in_thread,
    start_chrome,
)

KEY = "browser-test-key"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    browser, driver = chromium_or_skip()
    chrome = start_chrome(browser, driver)
    chrome.set_page_load_timeout(20)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """The service of an embedded queue, with an API key and two thread workers."""
    queue = JobQueue(connect(), "browser")
    with serve_in_thread(create_app(queue, workers=2, api_key=KEY)) as url:
        yield url


@pytest.fixture
def requests_seen(chrome: Any) -> Iterator[RequestLog]:
    """The URLs the test's pages request; after the test, none may leave 127.0.0.1."""
    log = RequestLog(chrome)
    log.read()  # drop what earlier tests left in the logs
    log.urls.clear()
    chrome.get_log("browser")
    yield log
    foreign = log.foreign()
    chrome.get("about:blank")  # closes the dashboard's feed, which would hold up the shutdown
    assert foreign == []


def _wait(chrome: Any, condition: Any, timeout_s: float = 15.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(chrome, timeout_s, poll_frequency=0.05).until(condition)


def _operations(service: str) -> list[dict[str, Any]]:
    schema = httpx.get(f"{service}/openapi.json", timeout=10).json()
    return [
        op
        for path in schema["paths"].values()
        for method, op in path.items()
        if method in HTTP_METHODS
    ]


def test_swagger_renders_every_operation_offline(chrome, service, requests_seen) -> None:
    """`/docs` draws one `.opblock` per operation of the OpenAPI, from the vendored Swagger UI."""
    expected = len(_operations(service))
    chrome.get(f"{service}/docs")
    _wait(chrome, lambda c: c.find_elements("css selector", ".opblock"))
    blocks = chrome.find_elements("css selector", ".opblock")
    screenshot(chrome, "swagger")
    assert expected > 10
    assert len(blocks) == expected
    assert f"{service}/static/vendor/swagger-ui/swagger-ui-bundle.js" in requests_seen.read()


def test_redoc_renders_every_operation_offline(chrome, service, requests_seen) -> None:
    """`/redoc` draws a section per operation from the vendored ReDoc bundle."""
    operations = _operations(service)
    chrome.get(f"{service}/redoc")
    selector = "[data-section-id^='operation/']"
    _wait(chrome, lambda c: c.find_elements("css selector", selector))
    sections = chrome.find_elements("css selector", selector)
    screenshot(chrome, "redoc")
    assert len(sections) == len(operations)
    assert f"{service}/static/vendor/redoc/redoc.standalone.js" in requests_seen.read()


def _by_id(chrome: Any, element_id: str) -> Any:
    return chrome.find_element("id", element_id)


def _open_dashboard(chrome: Any, url: str) -> None:
    chrome.get(url)
    _wait(chrome, lambda c: _by_id(c, "live").text == "live")


def test_the_dashboard_asks_for_the_key_and_then_goes_live(chrome, service, requests_seen) -> None:
    """Without a stored key the feed answers 401 and the page asks; with it the feed is live."""
    chrome.get(f"{service}/")
    chrome.execute_script("sessionStorage.clear()")
    chrome.get(f"{service}/")
    _wait(chrome, lambda c: _by_id(c, "key-form").is_displayed())
    assert _by_id(chrome, "live").text != "live"
    _by_id(chrome, "key-input").send_keys(KEY)
    _by_id(chrome, "key-form").submit()
    _wait(chrome, lambda c: _by_id(c, "live").text == "live")
    assert not _by_id(chrome, "key-form").is_displayed()
    assert chrome.execute_script("return sessionStorage.getItem('jobsim.apiKey')") == KEY


def test_the_dashboard_shows_a_submitted_job_reaching_completed(
    chrome, service, requests_seen
) -> None:
    """A job submitted from the page's form is shown `completed`, with its one attempt."""
    _open_dashboard(chrome, f"{service}/?key={KEY}")
    assert "key=" not in chrome.current_url  # dropped from the address bar, kept in the tab
    payload = _by_id(chrome, "submit-payload")
    payload.clear()
    payload.send_keys('{"seconds": 0.2}')
    _by_id(chrome, "submit-button").click()
    _wait(chrome, lambda c: _by_id(c, "job-status").text == "completed")
    task_id = _by_id(chrome, "job-id").text
    screenshot(chrome, "dashboard-completed")
    job = httpx.get(f"{service}/status/{task_id}", headers={"X-API-Key": KEY}).json()
    assert (job["status"], job["attempts"], job["task"]) == ("completed", 1, "sleep")
    rows = chrome.find_elements("css selector", "#job-attempts tr")
    assert len(rows) == 1 and "completed" in rows[0].text
    card = chrome.find_element("css selector", "#counts [data-status='completed'] .n")
    _wait(chrome, lambda c: int(card.text) >= 1)
    seen = requests_seen.read()
    assert f"{service}/events" in seen and f"{service}/jobs/{task_id}" in seen
    assert chrome.get_log("browser") == []  # no script error, no policy violation


def test_a_dead_letter_is_requeued_by_clicking_its_button(chrome, service, requests_seen) -> None:
    """A job that failed its only attempt shows in the dead-letter table; its Requeue button
    puts it back, and its second attempt completes."""
    headers = {"X-API-Key": KEY}
    body = {"task": "fail", "payload": {"times": 1}, "max_retries": 0}
    task_id = httpx.post(f"{service}/submit", json=body, headers=headers).json()["task_id"]
    _open_dashboard(chrome, f"{service}/?key={KEY}")
    button = f"#dead button.requeue[data-id='{task_id}']"
    _wait(chrome, lambda c: c.find_elements("css selector", button))
    screenshot(chrome, "dashboard-dead-letter")
    chrome.find_element("css selector", button).click()
    _wait(chrome, lambda c: _by_id(c, "job-status").text == "completed")
    _wait(chrome, lambda c: not c.find_elements("css selector", button))
    job = httpx.get(f"{service}/jobs/{task_id}", headers=headers).json()
    assert job["status"] == "completed"
    assert [a["outcome"] for a in job["attempt_log"]] == ["failed", "completed"]
    assert len(chrome.find_elements("css selector", "#job-timeline .attempt")) == 2


def _snapshots_pass(chrome: Any, seconds: float) -> None:
    """Wait until the page has drawn a snapshot taken ``seconds`` after the one it shows now."""
    t0 = chrome.execute_script("return state.last.time")
    _wait(chrome, lambda c: c.execute_script("return state.last.time") >= t0 + seconds)


def _list(chrome: Any, status: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(_by_id(chrome, "list-status")).select_by_value(status)
    _by_id(chrome, "list-form").submit()


def test_pause_holds_a_submitted_job_and_resume_lets_it_complete(
    chrome, service, requests_seen
) -> None:
    """Paused from the page, the queue shows its badge and a job submitted then stays queued
    over a full snapshot interval; Resume lets it complete, and the live list drops its
    Cancel button. Cancelling it anyway (the button's own call, as a click racing the
    refresh would make it) gets the service's 409, and the page shows that error."""
    headers = {"X-API-Key": KEY}
    _open_dashboard(chrome, f"{service}/?key={KEY}")
    try:
        _by_id(chrome, "pause").click()
        _wait(chrome, lambda c: _by_id(c, "paused").is_displayed())
        _wait(chrome, lambda c: c.execute_script("return state.last.paused") is True)  # the feed
        payload = _by_id(chrome, "submit-payload")
        payload.clear()
        payload.send_keys('{"seconds": 0.05}')
        _by_id(chrome, "submit-button").click()
        _wait(chrome, lambda c: _by_id(c, "job-status").text == "queued")
        task_id = _by_id(chrome, "job-id").text
        _snapshots_pass(chrome, 1.0)
        assert _by_id(chrome, "job-status").text == "queued"
        assert httpx.get(f"{service}/jobs/{task_id}", headers=headers).json()["status"] == "queued"
        assert _by_id(chrome, "paused").is_displayed()
        _list(chrome, "queued")
        button = f"#list button.cancel[data-id='{task_id}']"
        _wait(chrome, lambda c: c.find_elements("css selector", button))
        screenshot(chrome, "dashboard-paused")
        _by_id(chrome, "resume").click()
        _wait(chrome, lambda c: _by_id(c, "job-status").text == "completed")
        assert not _by_id(chrome, "paused").is_displayed()
        assert not _by_id(chrome, "job-cancel").is_displayed()  # a finished job has none
        _wait(chrome, lambda c: not c.find_elements("css selector", button))  # the live list
        chrome.execute_script("cancel(arguments[0])", task_id)
        _wait(chrome, lambda c: _by_id(c, "error").is_displayed())
        error = _by_id(chrome, "error").text
        assert f"jobs/{task_id}/cancel: 409" in error
        _snapshots_pass(chrome, 1.0)  # the job view's refresh does not wipe the error
        assert _by_id(chrome, "error").text == error
        assert httpx.get(f"{service}/jobs/{task_id}", headers=headers).json()["status"] == (
            "completed"
        )
    finally:
        httpx.post(f"{service}/resume", headers=headers)


def _list_row(chrome: Any, task_id: str) -> Any:
    rows = chrome.find_elements("css selector", f"#list tr[data-id='{task_id}']")
    return rows[0] if rows else None


def test_the_job_list_follows_the_queue_without_a_reload(chrome, service, requests_seen) -> None:
    """A job submitted (over HTTP, not from the page) after the page loaded shows up in the
    open list of queued jobs, leaves it when it runs, and shows up `completed` in the list of
    completed jobs, newest first: all from the live feed, with no click on List and no
    reload."""
    headers = {"X-API-Key": KEY}
    _open_dashboard(chrome, f"{service}/?key={KEY}")
    chrome.execute_script("window.loadedOnce = true")
    from selenium.webdriver.support.ui import Select

    try:
        httpx.post(f"{service}/pause", headers=headers)
        Select(_by_id(chrome, "list-status")).select_by_value("queued")
        body = {"task": "noop", "payload": None}
        task_id = httpx.post(f"{service}/submit", json=body, headers=headers).json()["task_id"]
        _wait(chrome, lambda c: _list_row(c, task_id) is not None)
        assert "queued" in _list_row(chrome, task_id).text
        Select(_by_id(chrome, "list-status")).select_by_value("completed")
        _wait(chrome, lambda c: "newest first" in _by_id(c, "list-total").text)
        assert _list_row(chrome, task_id) is None
    finally:
        httpx.post(f"{service}/resume", headers=headers)
    _wait(chrome, lambda c: _list_row(c, task_id) is not None)
    row = _list_row(chrome, task_id)
    assert row.find_element("css selector", ".list-status").text == "completed"
    first = chrome.find_element("css selector", "#list tr")
    assert first.get_attribute("data-id") == task_id  # newest first
    assert chrome.execute_script("return window.loadedOnce") is True  # the same page
    screenshot(chrome, "dashboard-live-list")
    assert chrome.get_log("browser") == []


def test_a_scheduled_job_is_cancelled_from_the_list(chrome, service, requests_seen) -> None:
    """A job due in 60 s is listed as scheduled with a Cancel button; clicking it cancels the
    job, and the job view shows `cancelled`."""
    headers = {"X-API-Key": KEY}
    body = {"task": "noop", "payload": None, "delay_s": 60}
    task_id = httpx.post(f"{service}/submit", json=body, headers=headers).json()["task_id"]
    _open_dashboard(chrome, f"{service}/?key={KEY}")
    _list(chrome, "scheduled")
    button = f"#list button.cancel[data-id='{task_id}']"
    _wait(chrome, lambda c: c.find_elements("css selector", button))
    chrome.find_element("css selector", button).click()
    _wait(chrome, lambda c: _by_id(c, "job-status").text == "cancelled")
    assert _by_id(chrome, "job-id").text == task_id
    assert not _by_id(chrome, "job-cancel").is_displayed()
    assert not _by_id(chrome, "error").is_displayed()
    job = httpx.get(f"{service}/jobs/{task_id}", headers=headers).json()
    assert (job["status"], job["attempts"]) == ("cancelled", 0)


def test_a_failed_attempts_traceback_is_shown_collapsed(chrome, service, requests_seen) -> None:
    """A failed attempt's stack trace sits collapsed under its error; opened, it shows the
    trace and stays open across the job view's redraw on the next snapshot."""
    headers = {"X-API-Key": KEY}
    body = {"task": "fail", "payload": {"times": 1}, "max_retries": 0}
    task_id = httpx.post(f"{service}/submit", json=body, headers=headers).json()["task_id"]
    job = httpx.get(f"{service}/status/{task_id}?wait_s=10", headers=headers, timeout=15).json()
    assert job["status"] == "failed"
    _open_dashboard(chrome, f"{service}/?key={KEY}")
    _by_id(chrome, "inspect-id").send_keys(task_id)
    _by_id(chrome, "inspect-form").submit()
    _wait(chrome, lambda c: _by_id(c, "job-status").text == "failed")
    trace = "#job-attempts details.traceback pre"
    assert not chrome.find_element("css selector", trace).is_displayed()
    chrome.find_element("css selector", "#job-attempts details.traceback summary").click()
    _wait(chrome, lambda c: c.find_element("css selector", trace).is_displayed())
    assert "Traceback (most recent call last)" in chrome.find_element("css selector", trace).text
    _snapshots_pass(chrome, 1.0)
    assert chrome.find_element("css selector", trace).is_displayed()
    screenshot(chrome, "dashboard-traceback")


def test_a_scenario_button_submits_the_scenario(chrome, service, requests_seen) -> None:
    """The poison-job scenario's button submits its 21 jobs to the served queue and the page
    says so (how scenarios play out is tests/test_api_dashboard.py)."""
    headers = {"X-API-Key": KEY}
    before = httpx.get(f"{service}/stats", headers=headers).json()["totals"].get("submitted", 0)
    _open_dashboard(chrome, f"{service}/?key={KEY}")
    chrome.find_element("css selector", "[data-scenario='poison-job']").click()
    _wait(chrome, lambda c: "scenario poison-job: submitted 21 jobs" in _by_id(c, "log").text)
    stats = httpx.get(f"{service}/stats", headers=headers).json()
    assert stats["totals"]["submitted"] == before + 21
