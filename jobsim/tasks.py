"""Tasks: a registry from task name to a callable taking the job's JSON payload.

A handler takes the payload, and optionally a :class:`JobContext` as a second argument::

    @jobsim.task("resize")
    def resize(payload: dict) -> dict:
        return {"width": payload["width"] // 2}

The built-in tasks (``noop``, ``sleep``, ``flaky``, ``fail``, ``crash``) live in
:mod:`jobsim.builtin_tasks`, registered when ``jobsim`` is imported; the simulator's own
``sim`` task lives in :mod:`jobsim.sim.job`.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from jobsim.errors import InvalidPayloadError, JobCancelledError, UnknownTaskError

Handler = Callable[..., Any]


@dataclass(frozen=True)
class JobContext:
    """What a handler may want to know about the attempt it is running, and whether the job
    has been cancelled meanwhile (the worker learns that at its next heartbeat).

    Example:
        >>> @task("chunks", registry=TaskRegistry())
        ... def chunks(payload, ctx):
        ...     for _ in range(payload["n"]):
        ...         ctx.raise_if_cancelled()   # stop between chunks once cancelled
        ...         ctx.sleep(0.1)             # or any work; sleep wakes early on cancel
    """

    job_id: str
    attempt: int
    worker_id: str
    in_process_worker: bool
    cancel_event: threading.Event = field(
        default_factory=threading.Event, repr=False, compare=False
    )

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled while this attempt runs: stop soon if so."""
        return self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`jobsim.errors.JobCancelledError` if the job was cancelled (the
        worker then ends it ``cancelled``).

        Raises:
            JobCancelledError: the job was cancelled.
        """
        if self.cancelled:
            raise JobCancelledError(self.job_id)

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once if the job is cancelled meanwhile.

        Returns:
            Whether the job was cancelled.
        """
        return self.cancel_event.wait(seconds)


class AbandonJob(BaseException):
    """Raised inside a thread worker to simulate the thread dying mid-job.

    The worker drops the job without acking and stops heartbeating its lease, exactly as
    if the thread had died; the lease then expires and another worker takes the job.
    """


@dataclass(frozen=True)
class TaskSpec:
    """A registered task."""

    name: str
    fn: Handler
    takes_context: bool
    timeout_s: float | None
    payload_model: type[BaseModel] | None

    @property
    def module(self) -> str:
        """Module whose import registers this task (process workers import it)."""
        return str(self.fn.__module__)

    def validate(self, payload: Any) -> None:
        """Check a payload against the task's payload model, if it has one.

        Raises:
            InvalidPayloadError: naming the first offending field.
        """
        if self.payload_model is None:
            return
        try:
            self.payload_model.model_validate({} if payload is None else payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            raise InvalidPayloadError(
                f"payload for task {self.name!r}: {where}: {first['msg']}",
                field=f"payload.{where}" if first["loc"] else "payload",
                value=payload,
            ) from None

    def run(self, payload: Any, ctx: JobContext) -> Any:
        """Call the handler."""
        return self.fn(payload, ctx) if self.takes_context else self.fn(payload)


class TaskRegistry:
    """Task name -> :class:`TaskSpec`."""

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}

    def register(
        self,
        name: str,
        fn: Handler,
        *,
        timeout_s: float | None = None,
        payload_model: type[BaseModel] | None = None,
    ) -> TaskSpec:
        """Register ``fn`` under ``name``; a later registration of the same name replaces it."""
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        spec = TaskSpec(name, fn, len(params) >= 2, timeout_s, payload_model)
        self._specs[name] = spec
        return spec

    def get(self, name: str) -> TaskSpec:
        """The task registered under ``name``.

        Raises:
            UnknownTaskError: if there is none.
        """
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise UnknownTaskError(
                f"unknown task {name!r}; registered tasks: {known}", field="task", value=name
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(list(self._specs.values()))

    def names(self) -> list[str]:
        """Registered task names, sorted."""
        return sorted(self._specs)


registry = TaskRegistry()
"""The default registry, used by :func:`task` and by queues not given their own."""


def task(
    name: str | None = None,
    *,
    timeout_s: float | None = None,
    payload_model: type[BaseModel] | None = None,
    registry: TaskRegistry = registry,
) -> Callable[[Handler], Handler]:
    """Register a function as a task.

    Example:
        >>> @task("double")
        ... def double(payload):
        ...     return payload["x"] * 2

    Args:
        name: the task name; defaults to the function's name.
        timeout_s: per-job timeout for this task, overriding the worker pool's.
        payload_model: a pydantic model every payload is validated against at submit time.
        registry: where to register; the default registry unless given.
    """

    def decorate(fn: Handler) -> Handler:
        registry.register(name or fn.__name__, fn, timeout_s=timeout_s, payload_model=payload_model)
        return fn

    return decorate


# --- built-in simulated tasks -------------------------------------------------------------


class SimulatedFailure(RuntimeError):
    """The retryable failure the built-in and simulated tasks raise on purpose."""
