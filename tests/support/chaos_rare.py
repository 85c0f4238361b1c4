"""A second chaos task, registered only where this module is imported.

Workers started without ``--import tests.support.chaos_rare`` do not know ``chaos_rare``: each
delivery to one of them is a retryable "unknown task" failure that never runs the job, which
is how a mixed fleet (hosts with different code) looks to the queue.
"""

from __future__ import annotations

from typing import Any

import jobsim
from jobsim.tasks import JobContext
from tests.support.chaos_tasks import run


@jobsim.task("chaos_rare")
def chaos_rare(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    """The same work as ``chaos_log``, under a name only some workers know."""
    return run(payload, ctx)
