"""The HTTP service: the seed's ``POST /submit`` and ``GET /status/{task_id}``, plus listing,
dead-letter operations, stats, health and Prometheus metrics; workers run in the lifespan.

Example:
    >>> import jobsim
    >>> app = create_app(jobsim.JobQueue(jobsim.connect()), workers=4)
    >>> app.title
    'jobsim'
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP

    ``jobsim serve`` does the same from the command line.

Modules, each one concept; each imports only those below it:

- :mod:`jobsim.api.app`: ``create_app``, the lifespan that runs the workers, and the routes;
- :mod:`jobsim.api.submitting`: ``POST /submit`` and ``POST /submit/batch``, with a job id of
  the client's own and the ``Idempotency-Key`` header;
- :mod:`jobsim.api.control`: ``POST /pause`` and ``POST /resume``;
- :mod:`jobsim.api.dashboard`: the live dashboard at ``/`` and the teaching scenarios' routes;
- :mod:`jobsim.api.events`: ``GET /events``, the dashboard's server-sent-events feed;
- :mod:`jobsim.api.scenarios`: the teaching scenarios (named sets of built-in-task jobs);
- :mod:`jobsim.api.docs`: ``/docs`` and ``/redoc`` from vendored assets, and ``/static``;
- :mod:`jobsim.api.guard`: what runs before a route (API key, body size, unknown query);
- :mod:`jobsim.api.metrics`: throughput for ``/stats`` and the Prometheus collector;
- :mod:`jobsim.api.contract`: the published per-task schema of ``POST /submit`` and the
  strict payload check that keeps the service to it;
- :mod:`jobsim.api.errors`: the one table from the exception tree to HTTP status codes, and
  every error answer;
- :mod:`jobsim.api.schemas`: the request and response bodies (pydantic models).
"""

from __future__ import annotations

try:  # the extra is checked once here, so every module of the package fails the same way
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the HTTP API needs its extra: pip install 'jobsim[api]'") from exc

from jobsim.api.app import API_KEY_ENV, create_app
from jobsim.api.guard import API_KEY_HEADER
from jobsim.api.schemas import SEED_TASK, SEED_TASK_SECONDS

__all__ = ["API_KEY_ENV", "API_KEY_HEADER", "SEED_TASK", "SEED_TASK_SECONDS", "create_app"]
