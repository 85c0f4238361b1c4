"""One exception tree for everything jobsim raises on purpose.

::

    JobsimError
    ├── ConnectError                 a Redis URL that cannot be used (password masked)
    │   ├── InvalidURLError          the URL itself is malformed
    │   └── BackendError             Redis cannot serve a call: cluster down, a mis-routed
    │       │                        key (MOVED/ASK), a read-only replica (password masked)
    │       └── ReplicationError     a submit fewer replicas acknowledged than asked for
    ├── InvalidInputError            bad input; nothing was written (also a ValueError)
    │   ├── UnknownTaskError         task name not in the registry
    │   ├── InvalidPayloadError      payload is not one JSON document
    │   │   └── PayloadTooLargeError encoded payload over the queue's size limit
    │   └── InvalidPriorityError     priority outside PRIORITY_MIN..PRIORITY_MAX
    ├── JobNotFoundError             no job with that id (also a KeyError)
    ├── InvalidStateError            the job exists but is not where the call needs it
    │   └── JobFinishedError         cancel of a job already completed or failed
    ├── DrainTimeoutError            wait_until_drained ran out of time (also a TimeoutError)
    ├── WaitTimeoutError             wait(job_id) ran out of time (also a TimeoutError)
    ├── JobCancelledError            raised in a task by ctx.raise_if_cancelled()
    └── PermanentError               raised by a task: skip retries, dead-letter now

Input errors carry the offending value on ``.value`` so callers (the HTTP API, the
command line) can name it without parsing the message.
"""

from __future__ import annotations

from typing import Any


class JobsimError(Exception):
    """Root of every error jobsim raises on purpose."""


class ConnectError(JobsimError):
    """A Redis URL could not be used: unreachable server, refused auth, bad TLS.

    Attributes:
        url: the URL with any password replaced by ``***``.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(f"{message} (url: {url})")
        self.url = url


class InvalidURLError(ConnectError):
    """The Redis URL is malformed or uses an unsupported scheme."""


class BackendError(ConnectError):
    """Redis answered, but cannot serve the call where it was sent: a cluster that is down
    or failing over, a key that still moves after the client's retries, a read-only replica.
    Transient: retrying later (after a failover) may succeed; submits are safe to retry with
    a ``job_id`` of your own."""


class ReplicationError(BackendError):
    """Fewer replicas than ``QueueConfig.replicas`` acknowledged a submit in time.

    The job is written on the master but a failover now could lose it; submitting again
    with the same ``job_id`` is safe and waits again.

    Attributes:
        acked: replicas that acknowledged.
        wanted: replicas asked for.
    """

    def __init__(self, message: str, *, url: str, acked: int, wanted: int) -> None:
        super().__init__(message, url=url)
        self.acked = acked
        self.wanted = wanted


class InvalidInputError(JobsimError, ValueError):
    """Input was rejected before anything was written to Redis.

    Attributes:
        field: the name of the offending argument or field.
        value: the offending value (may be truncated for display).
    """

    def __init__(self, message: str, *, field: str, value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class UnknownTaskError(InvalidInputError):
    """The task name is not registered."""


class InvalidPayloadError(InvalidInputError):
    """The payload is not one JSON document (NaN, bytes, sets and objects are not JSON)."""


class PayloadTooLargeError(InvalidPayloadError):
    """The JSON-encoded payload exceeds the queue's ``max_payload_bytes``."""


class InvalidPriorityError(InvalidInputError):
    """The priority is not an integer within ``PRIORITY_MIN..PRIORITY_MAX``."""


class JobNotFoundError(JobsimError, KeyError):
    """No job with this id exists in the queue (never submitted, purged or expired)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id

    def __str__(self) -> str:  # KeyError would quote the whole message again
        return str(self.args[0])


class InvalidStateError(JobsimError):
    """The job exists but its status does not allow the operation (e.g. requeue of a live job)."""

    def __init__(self, message: str, *, job_id: str, status: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status


class JobFinishedError(InvalidStateError):
    """The job already ended (``completed`` or ``failed``), so it cannot be cancelled."""


class WaitTimeoutError(JobsimError, TimeoutError):
    """The job was not finished when :meth:`jobsim.JobQueue.wait` ran out of time.

    Attributes:
        job_id: the job waited for.
        status: its status at the deadline.
        timeout_s: how long the call waited.
    """

    def __init__(self, job_id: str, status: str, timeout_s: float) -> None:
        super().__init__(f"job {job_id!r} still {status} after waiting {timeout_s:g} s")
        self.job_id = job_id
        self.status = status
        self.timeout_s = timeout_s


class JobCancelledError(JobsimError):
    """Raised inside a task by :meth:`jobsim.tasks.JobContext.raise_if_cancelled`: the job was
    cancelled while it ran. The worker then ends it ``cancelled`` (never retried)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} was cancelled")
        self.job_id = job_id


class DrainTimeoutError(JobsimError, TimeoutError):
    """The queue still had active jobs when the timeout expired.

    Attributes:
        active: counts of queued, processing and retrying jobs at the deadline.
    """

    def __init__(self, message: str, *, active: dict[str, int]) -> None:
        super().__init__(message)
        self.active = active


class PermanentError(JobsimError):
    """Raise from a task to send the job straight to the dead-letter queue, without retries."""
