"""Real-browser helpers: the system's headless Chromium driven by Selenium through Debian's
``chromedriver`` (built from the same source as the browser, so their versions always match),
a uvicorn server in a thread on a free loopback port, and a record of every URL the pages
requested (from the DevTools ``Network`` events in Chrome's performance log)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn

from jobsim.localredis import free_port
from tests.support.waiting import wait_until

REQUIRE_BROWSER = os.environ.get("JOBSIM_REQUIRE_BROWSER") == "1"
"""Set by ``.ci/run``: a missing Chromium, chromedriver or selenium fails instead of skipping."""
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
"""Where the browser tests save screenshots (gitignored)."""
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome", "chrome-extension"})


def chromium_or_skip() -> tuple[str, str]:
    """Paths of ``chromium`` and ``chromedriver``; skip (or, with
    ``JOBSIM_REQUIRE_BROWSER=1``, fail) when either or selenium is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        driver = None
    if browser and driver:
        return browser, driver
    reason = (
        "the browser tests need Debian's chromium and chromium-driver and the selenium package "
        "(apt-get install chromium chromium-driver; pip install -e '.[test]')"
    )
    if REQUIRE_BROWSER:
        pytest.fail(f"JOBSIM_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def start_chrome(browser: str, driver: str) -> Any:
    """A headless Chromium whose performance log records the DevTools network events."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


class RequestLog:
    """Every URL the browser's pages asked for, read from the performance log as it drains."""

    def __init__(self, chrome: Any) -> None:
        self.chrome = chrome
        self.urls: list[str] = []

    def read(self) -> list[str]:
        """Drain the performance log; returns every URL recorded so far."""
        for entry in self.chrome.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                self.urls.append(params["request"]["url"])
            elif message.get("method") == "Network.webSocketCreated":
                self.urls.append(params["url"])
        return self.urls

    def foreign(self) -> list[str]:
        """The recorded URLs whose host is not 127.0.0.1 (``data:`` and the like excepted)."""
        return [
            url
            for url in self.read()
            if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).hostname != "127.0.0.1"
        ]


def screenshot(chrome: Any, name: str) -> Path:
    """Save a PNG of the page under :data:`SCREENSHOTS`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    chrome.save_screenshot(str(path))
    return path


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout_s=30)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
