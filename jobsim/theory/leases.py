"""Leases: how long a crashed worker's job takes to come back (E10)."""

from __future__ import annotations

import math

from jobsim.theory.inputs import require


def lease_give_back_s(
    lease_s: float, *, heartbeat_s: float, mean_service_s: float, c: int, p_all_busy: float
) -> float:
    """Mean time from a worker's death to its job's give-back, seconds (E10, thread pool).

    The worker dies as its job ends (the job it was running when the crash chose it among
    the busy workers, so its service ``S`` is length-biased: for exponential service with
    mean ``m``, Gamma(2, m), ``P(S > x) = (1 + x/m) e^{-x/m}``). The lease was last renewed
    at the later of the last heartbeat (every ``h = heartbeat_s`` on a fixed grid, so that
    was ``U ~ Uniform(0, h)`` before the death) and the dequeue (``S`` before), and expires
    ``lease_s`` after it: the deadline comes ``L - min(U, S)`` after the death, with

    ``E[min(U, S)] = int_0^h (1 - x/h) (1 + x/m) e^{-x/m} dx
    = I1 - I2/h``, ``I1 = 2m(1 - e) - h e``, ``I2 = 3m² - e (h² + 3hm + 3m²)``, ``e = e^{-h/m}``.

    The job is given back by the next ``DEQUEUE``: at the deadline if a worker is idle,
    else when the first of the ``c`` busy workers ends its (exponential) job, ``m/c`` later
    on average; ``p_all_busy`` is the chance that every worker is busy then (Erlang C for
    an M/M/c).

    Args:
        lease_s: lease length ``L``, seconds, ``> 0``.
        heartbeat_s: heartbeat period ``h``, seconds, ``0 < h <= L``.
        mean_service_s: mean service ``m``, seconds, ``> 0``.
        c: workers, ``>= 1``.
        p_all_busy: probability that all workers are busy at the deadline, ``[0, 1]``.

    Returns:
        ``L - E[min(U, S)] + p_all_busy * m / c``, seconds.

    Example:
        >>> round(lease_give_back_s(3.0, heartbeat_s=1.0, mean_service_s=1.0, c=4,
        ...                         p_all_busy=0.0), 4)
        2.5285
    """
    require(lease_s > 0, "lease must be > 0 s", field="lease_s", value=lease_s)
    require(0 < heartbeat_s <= lease_s, "heartbeat within (0, lease]", field="heartbeat_s",
             value=heartbeat_s)  # fmt: skip
    m, h = mean_service_s, heartbeat_s
    require(m > 0, "mean service time must be > 0 s", field="mean_service_s", value=m)
    require(c >= 1, "need at least one worker", field="c", value=c)
    require(0 <= p_all_busy <= 1, "probability within [0, 1]", field="p_all_busy",
             value=p_all_busy)  # fmt: skip
    e = math.exp(-h / m)
    i1 = 2 * m * (1 - e) - h * e
    i2 = 3 * m * m - e * (h * h + 3 * h * m + 3 * m * m)
    return lease_s - (i1 - i2 / h) + p_all_busy * m / c
