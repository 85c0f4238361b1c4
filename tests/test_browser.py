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
    log.read()  # drop what earlier tests left in the log
    log.urls.clear()
    yield log
    assert log.foreign() == []


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
