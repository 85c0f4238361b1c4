"""Input checks shared by the theory modules: each raises ``InvalidInputError`` naming the
field, and is phrased so that NaN fails it."""

from __future__ import annotations

from jobsim.errors import InvalidInputError


def require(ok: bool, message: str, *, field: str, value: object) -> None:
    # Every check is phrased so that it is False for NaN, which is rejected with the rest.
    if not ok:
        raise InvalidInputError(f"{message}, got {field}={value!r}", field=field, value=value)


def check_mmc(lam: float, mu: float, c: int) -> float:
    """Validate the rates and return ``rho`` (which may be >= 1: that is not an input error)."""
    require(lam >= 0, "arrival rate must be >= 0 jobs/s", field="lam", value=lam)
    require(mu > 0, "service rate must be > 0 jobs/s", field="mu", value=mu)
    require(c >= 1, "need at least one worker", field="c", value=c)
    return lam / (c * mu)


def check_retries(p: float, r: int | None) -> None:
    require(0 <= p <= 1, "failure probability must be within [0, 1]", field="p", value=p)
    require(r is None or r >= 0, "retry limit must be >= 0 or None", field="r", value=r)
    require(r is not None or p < 1, "p = 1 with unlimited retries never ends", field="p", value=p)
