"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served entirely by the package, and the
``/static`` files behind them and the dashboard.

FastAPI's own docs pages load their scripts, styles, fonts and favicon from CDNs, so on a
machine without internet they are blank. Here the same pages are built with FastAPI's
``get_swagger_ui_html`` / ``get_redoc_html`` but point at copies vendored from the npm
registry into ``jobsim/api/static/vendor/`` (versions in :data:`VENDORED`; licences and
provenance in ``static/vendor/README.md``). The pages hold no data, so they are open (see
:data:`jobsim.api.guard.OPEN_PATHS`); ``/openapi.json`` carries the schema.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
"""The package data served under :data:`STATIC_URL`: the vendored libraries, the dashboard's
script, style and icon."""
STATIC_URL = "/static"
"""Where :data:`STATIC_DIR` is served (open without the API key: it holds no data)."""
VENDORED = {"swagger-ui-dist": "5.35.0", "redoc": "2.5.4", "uplot": "1.6.32"}
"""The npm packages copied into ``static/vendor/``, and their versions."""
DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL = "/docs", "/redoc", "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)


def install_docs(app: FastAPI) -> None:
    """Serve :data:`STATIC_DIR` and the offline docs pages on ``app``.

    ``app`` must be built with ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are
    not registered first.
    """
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)


def _static(request: Request, path: str) -> str:
    return f"{request.scope.get('root_path', '')}{STATIC_URL}/{path}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.get(DOCS_URL)
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI from the vendored ``swagger-ui-dist``; the online validator is off."""
    app: FastAPI = request.app
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{app.title} - Swagger UI",
        swagger_js_url=_static(request, "vendor/swagger-ui/swagger-ui-bundle.js"),
        swagger_css_url=_static(request, "vendor/swagger-ui/swagger-ui.css"),
        swagger_favicon_url=_static(request, "favicon.svg"),
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
    )


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_redirect() -> HTMLResponse:
    """The page Swagger UI's OAuth2 flow returns to (inline script, no assets)."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC_URL)
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc from the vendored ``redoc`` standalone bundle, without Google Fonts."""
    app: FastAPI = request.app
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{app.title} - ReDoc",
        redoc_js_url=_static(request, "vendor/redoc/redoc.standalone.js"),
        redoc_favicon_url=_static(request, "favicon.svg"),
        with_google_fonts=False,
    )
