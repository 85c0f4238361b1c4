"""The live dashboard: the page at ``/``, and the teaching scenarios it starts
(``GET /scenarios``, ``POST /scenarios/{name}``).

The page is server-rendered HTML (``templates/dashboard.html``) with one small script
(``static/dashboard.js``) and the vendored uPlot for the two time charts; no build step. It
holds no data, so it is open; the script asks for the API key (or takes ``?key=`` once,
keeps it in ``sessionStorage`` and drops it from the address bar) and sends it as
``Authorization: Bearer`` on every call: the existing JSON routes for dead letters, jobs,
submit, cancel, pause and resume (:mod:`jobsim.api.control`), and :mod:`jobsim.api.events`
for the live feed. Whatever statuses the queue reports are drawn, so statuses added to the
queue later appear without a change here.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from jobsim import __version__
from jobsim.api.docs import STATIC_URL, VENDORED
from jobsim.api.events import WINDOW_S
from jobsim.api.guard import known_query_only
from jobsim.api.scenarios import SCENARIOS
from jobsim.queue import JobQueue

_TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")

PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""The page's Content-Security-Policy: its browser fetches nothing but this service (scripts,
styles, the feed, the JSON calls), so even a bug in the page cannot reach another host."""

page_router = APIRouter(include_in_schema=False)
router = APIRouter(tags=["dashboard"], dependencies=[Depends(known_query_only)])

ScenarioName = Enum(  # type: ignore[misc]  # the path parameter's choices, from SCENARIOS
    "ScenarioName", {name.replace("-", "_"): name for name in SCENARIOS}, type=str
)


class ScenarioInfo(BaseModel):
    """A teaching scenario the dashboard can start."""

    name: str
    title: str
    watch: str = Field(description="what the scenario shows, and what to watch")


class ScenarioStarted(BaseModel):
    """The jobs a scenario submitted."""

    name: str
    submitted: int
    task_ids: list[str]


@page_router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    """The dashboard page (no data in it: the script fetches everything with the key)."""
    queue: JobQueue = request.app.state.queue
    return _TEMPLATES.TemplateResponse(
        request,
        "dashboard.html",
        {
            "queue": queue.name,
            "version": __version__,
            "static": f"{request.scope.get('root_path', '')}{STATIC_URL}",
            "uplot": VENDORED["uplot"],
            "scenarios": list(SCENARIOS.values()),
            "window_s": WINDOW_S,
            "lease_s": queue.config.lease.duration_s,
        },
        headers={"Cache-Control": "no-store", "Content-Security-Policy": PAGE_POLICY},
    )


@router.get("/scenarios", response_model=list[ScenarioInfo])
def scenarios() -> list[ScenarioInfo]:
    """The teaching scenarios, in the order the dashboard shows them."""
    return [ScenarioInfo(name=s.name, title=s.title, watch=s.watch) for s in SCENARIOS.values()]


@router.post("/scenarios/{name}", response_model=ScenarioStarted)
def start_scenario(
    name: Annotated[ScenarioName, PathParam(description="a name from GET /scenarios")],
    request: Request,
) -> ScenarioStarted:
    """Submit a scenario's jobs to the served queue (all or none); the workers run them."""
    queue: JobQueue = request.app.state.queue
    ids = SCENARIOS[name.value].start(queue)
    return ScenarioStarted(name=name.value, submitted=len(ids), task_ids=ids)
