"""How a pool's workers behave: concurrency, timeouts, grace, prefetch, seed."""

from __future__ import annotations

from dataclasses import dataclass

from jobsim.errors import InvalidInputError
from jobsim.tasks import TaskSpec

MAX_PREFETCH = 64
"""Most jobs one worker leases ahead."""


@dataclass(frozen=True, kw_only=True)
class PoolSettings:
    """How a pool's workers behave; see :class:`jobsim.pool.WorkerPool` for each field.

    Example:
        >>> PoolSettings(concurrency=2, prefetch_s=0.01).settle_after_s
        0.02
    """

    concurrency: int = 4
    job_timeout_s: float | None = None
    grace_s: float = 5.0
    prefetch_s: float = 0.002
    seed: int = 0

    def __post_init__(self) -> None:
        n = self.concurrency
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidInputError(
                "concurrency must be an integer >= 1", field="concurrency", value=n
            )
        for name in ("grace_s", "prefetch_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidInputError(f"{name} must be a number >= 0", field=name, value=value)
        timeout = self.job_timeout_s
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise InvalidInputError(
                "job_timeout_s must be > 0 or None", field="job_timeout_s", value=timeout
            )

    @property
    def settle_after_s(self) -> float:
        """Longest a finished job's result waits unsent."""
        return max(2 * self.prefetch_s, 0.005)

    def timeout_for(self, spec: TaskSpec) -> float | None:
        """The timeout of a job of ``spec``: the task's own, else the pool's default."""
        return spec.timeout_s if spec.timeout_s is not None else self.job_timeout_s
