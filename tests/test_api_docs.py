"""`/docs` and `/redoc` are built from the package's own files: every asset they name is on the
service itself and is served (also without the API key), and the vendored copies are recorded
with their versions and licences. The pages rendering in a browser is tests/test_browser.py."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient

from jobsim import JobQueue, connect
from jobsim.api import create_app
from jobsim.api.docs import STATIC_DIR, VENDORED

ASSET = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


@pytest.fixture
def http() -> TestClient:
    return TestClient(
        create_app(JobQueue(connect(), f"docs{uuid.uuid4().hex[:8]}"), workers=0, api_key="k")
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_asset_of_a_docs_page_is_served_by_the_package(http, page) -> None:
    """No `http(s)://` asset in the page; each one it names answers 200 without the key."""
    response = http.get(page)
    assert response.status_code == 200
    assets = ASSET.findall(response.text)
    assert len(assets) >= 2
    assert [a for a in assets if "://" in a] == []
    for asset in assets:
        assert asset.startswith("/"), asset
        served = http.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 0


def test_the_static_files_are_open_but_the_data_routes_still_need_the_key(http) -> None:
    assert http.get("/static/favicon.svg").status_code == 200
    assert http.get("/stats").status_code == 401
    assert http.get("/staticx").status_code == 401


def test_each_vendored_package_has_its_licence_and_its_version_in_the_readme() -> None:
    readme = (STATIC_DIR / "vendor" / "README.md").read_text()
    for name, version in VENDORED.items():
        assert f"`{name}` | {version}" in readme
    for folder in ("swagger-ui", "redoc", "uplot"):
        assert (STATIC_DIR / "vendor" / folder / "LICENSE").stat().st_size > 500


def test_the_vendored_scripts_name_no_cdn() -> None:
    """The bundles load nothing from a CDN by themselves (ReDoc's logo was patched out)."""
    for script in (STATIC_DIR / "vendor").rglob("*.js"):
        text = script.read_text(encoding="utf-8")
        assert not re.search(r"https://(cdn|fonts\.googleapis|unpkg)", text), script.name
