"""jobsim: a real Redis-backed priority job queue, and a simulator around it.

The public API is the names in ``__all__``; everything else may change.
"""

import logging

import jobsim.builtin_tasks  # noqa: F401  (registers noop, sleep, flaky, fail, crash)
from jobsim.config import Lease, QueueConfig, Retention
from jobsim.connection import connect
from jobsim.errors import JobsimError, PermanentError
from jobsim.limits import RateLimit
from jobsim.models import PRIORITY_MAX, PRIORITY_MIN, Job, JobStatus, QueueStats
from jobsim.periodic import Periodic
from jobsim.pool import WorkerPool
from jobsim.queue import JobQueue
from jobsim.requests import JobRequest
from jobsim.retry import RetryPolicy
from jobsim.tasks import task

__version__ = "0.1.0"

# A library logs only where its user asks it to (`jobsim worker --log-format`, or a handler of
# their own): without one, Python's last-resort handler would print every failed attempt.
logging.getLogger("jobsim").addHandler(logging.NullHandler())

__all__ = [
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "Job",
    "JobQueue",
    "JobRequest",
    "JobStatus",
    "JobsimError",
    "Lease",
    "Periodic",
    "PermanentError",
    "QueueConfig",
    "QueueStats",
    "RateLimit",
    "Retention",
    "RetryPolicy",
    "WorkerPool",
    "connect",
    "task",
]
