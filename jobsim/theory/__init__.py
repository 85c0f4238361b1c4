"""Queueing theory to put beside every measurement of the simulator.

Pure functions of their arguments: no I/O, no randomness, stdlib ``math`` only. The
formulas and reference values are those of ``docs/experiments.md``.

Notation and units: arrival rate ``lam`` (jobs/s), per-worker service rate ``mu``
(jobs/s, ``1/E[S]``), ``c`` workers, offered load ``a = lam/mu`` (erlangs), utilisation
``rho = lam/(c*mu)``, failure probability per attempt ``p``, retry limit ``r`` (at most
``r+1`` attempts, ``None`` for unlimited). Times are in seconds, SCVs are dimensionless.

Every function raises ``InvalidInputError`` (a ``ValueError`` carrying ``.field`` and
``.value``) on out-of-range or NaN input. An unstable queue (``rho >= 1``) is not an input
error: it is an answer. The waiting-time formulas then give their limit, ``math.inf`` (the
queue grows without bound), Erlang C gives 1 (every arrival waits), and ``mmc()`` returns an
``MMc`` whose ``applies`` is False with the ``reason`` to print where a number would be.

Example:
    >>> m = mmc(8.0, 1.0, 10)
    >>> round(m.p_wait, 5), round(m.wq, 5), m.applies
    (0.40918, 0.20459, True)
    >>> u = mmc(12.0, 1.0, 10)
    >>> u.applies, u.wq, u.p_wait
    (False, inf, 1.0)
    >>> u.reason
    'unstable: rho = 1.20 >= 1, the queue grows without bound'
"""

from __future__ import annotations

from jobsim.theory.bands import (
    binomial_band,
    mean_band,
)
from jobsim.theory.leases import (
    lease_give_back_s,
)
from jobsim.theory.queues import (
    MMc,
    allen_cunneen_wait,
    erlang_b,
    erlang_c,
    littles_law_l,
    mg1_wait,
    mmc,
    priority_waits,
    staffing,
    unstable_reason,
)
from jobsim.theory.retries import (
    attempts_variance,
    dead_letter_probability,
    effective_arrival_rate,
    expected_attempts,
    expected_backoff_s,
    outage_attempts,
)

__all__ = [
    "MMc",
    "allen_cunneen_wait",
    "attempts_variance",
    "binomial_band",
    "dead_letter_probability",
    "effective_arrival_rate",
    "erlang_b",
    "erlang_c",
    "expected_attempts",
    "expected_backoff_s",
    "lease_give_back_s",
    "littles_law_l",
    "mean_band",
    "mg1_wait",
    "mmc",
    "outage_attempts",
    "priority_waits",
    "staffing",
    "unstable_reason",
]
