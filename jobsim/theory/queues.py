"""Waiting in queues: Erlang B and C, M/M/c, M/G/1 (Pollaczek-Khinchine), Allen-Cunneen,
non-preemptive priorities, Little's law and staffing. At ``rho >= 1`` the waits are
``math.inf`` and ``mmc()`` says why (see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from jobsim.theory.inputs import check_mmc, require


def unstable_reason(rho: float) -> str:
    """Why no steady-state formula applies at utilisation ``rho``, or ``""`` when ``rho < 1``.

    Example:
        >>> unstable_reason(1.0)
        'unstable: rho = 1.00 >= 1, the queue grows without bound'
        >>> unstable_reason(0.5)
        ''
    """
    require(rho >= 0, "utilisation must be >= 0", field="rho", value=rho)
    if rho < 1:
        return ""
    return f"unstable: rho = {rho:.2f} >= 1, the queue grows without bound"


def erlang_b(c: int, a: float) -> float:
    """Erlang B: probability that an M/M/c/c arrival finds every server busy.

    Stable recursion: ``B(0,a) = 1``, ``B(k,a) = a*B(k-1,a) / (k + a*B(k-1,a))``.

    Args:
        c: number of servers, ``>= 0``.
        a: offered load ``lam/mu`` in erlangs, ``>= 0``.

    Returns:
        The blocking probability, within ``[0, 1]``.
    """
    require(c >= 0, "server count must be >= 0", field="c", value=c)
    require(a >= 0, "offered load must be >= 0", field="a", value=a)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C: probability that an M/M/c arrival has to wait.

    ``C(c,a) = B / (1 - rho*(1 - B))`` with ``B = erlang_b(c, a)`` and ``rho = a/c``.

    Args:
        c: number of workers, ``>= 1``.
        a: offered load ``lam/mu`` in erlangs, ``>= 0``.

    Returns:
        ``P(Wq > 0)``, within ``[0, 1]``; 1 when ``a >= c`` (unstable: its limit as
        ``a -> c``, every arrival waits).
    """
    require(c >= 1, "need at least one worker", field="c", value=c)
    require(a >= 0, "offered load must be >= 0", field="a", value=a)
    if a >= c:
        return 1.0
    b = erlang_b(c, a)
    return b / (1 - (a / c) * (1 - b))


@dataclass(frozen=True, kw_only=True)
class MMc:
    """Steady-state results of an M/M/c FCFS queue; build it with ``mmc()``.

    When ``rho >= 1`` there is no steady state: ``applies`` is False, ``reason`` says why,
    ``p_wait`` is 1 and the waits and counts are ``math.inf``.

    Attributes:
        lam: arrival rate, jobs/s.
        mu: per-worker service rate, jobs/s.
        c: number of workers.
        rho: utilisation ``lam/(c*mu)``.
        p_wait: Erlang C, the probability of waiting at all.
        wq: mean wait in queue, seconds.
        w: mean sojourn (wait + service), seconds.
        lq: mean number waiting, jobs.
        l: mean number in system, jobs.
    """

    lam: float
    mu: float
    c: int
    rho: float
    p_wait: float
    wq: float
    w: float
    lq: float
    l: float  # noqa: E741 (the textbook name, beside lq)

    @property
    def applies(self) -> bool:
        """Whether the queue is stable (``rho < 1``), so the steady-state numbers exist."""
        return self.rho < 1

    @property
    def reason(self) -> str:
        """Why the formulas do not apply (``""`` when they do), to print instead of a number."""
        return unstable_reason(self.rho)

    def p_wait_longer_than(self, t: float) -> float:
        """Tail of the wait: ``P(Wq > t) = C * exp(-(c*mu - lam) * t)``.

        Args:
            t: a wait in seconds, ``>= 0``.

        Returns:
            The probability that a job waits longer than ``t`` seconds (1 when unstable).
        """
        require(t >= 0, "wait must be >= 0 s", field="t", value=t)
        if not self.applies:
            return 1.0
        return self.p_wait * math.exp(-(self.c * self.mu - self.lam) * t)

    def wait_quantile(self, q: float) -> float:
        """The ``q``-quantile of the wait in queue, the inverse of ``p_wait_longer_than``.

        ``0`` if ``q <= 1 - C`` (that many jobs do not wait at all), else the ``t`` solving
        ``C * exp(-(c*mu - lam) * t) = 1 - q``, i.e. ``ln(C / (1 - q)) / (c*mu - lam)``.

        Args:
            q: probability, ``0 <= q < 1``.

        Returns:
            Seconds such that a fraction ``q`` of jobs waits no longer (``inf`` when
            unstable).
        """
        require(0 <= q < 1, "quantile must be within [0, 1)", field="q", value=q)
        if not self.applies:
            return math.inf
        if q <= 1 - self.p_wait:
            return 0.0
        return math.log(self.p_wait / (1 - q)) / (self.c * self.mu - self.lam)


def mmc(lam: float, mu: float, c: int) -> MMc:
    """Solve an M/M/c FCFS queue (``lam``, ``mu``, ``c`` as in the module notation).

    ``Wq = C(c,a) / (c*mu - lam)``, ``W = Wq + 1/mu``, ``Lq = lam*Wq``, ``L = lam*W``.

    At ``rho >= 1`` the result's ``applies`` is False (see :class:`MMc`): ``p_wait`` 1, waits
    and counts ``math.inf``.

    Raises:
        InvalidInputError: on a negative or NaN rate, ``mu <= 0`` or ``c < 1``.
    """
    rho = check_mmc(lam, mu, c)
    if rho >= 1:
        inf = math.inf
        return MMc(lam=lam, mu=mu, c=c, rho=rho, p_wait=1.0, wq=inf, w=inf, lq=inf, l=inf)
    p_wait = erlang_c(c, lam / mu)
    wq = p_wait / (c * mu - lam)
    w = wq + 1 / mu
    return MMc(lam=lam, mu=mu, c=c, rho=rho, p_wait=p_wait, wq=wq, w=w, lq=lam * wq, l=lam * w)


def mg1_wait(lam: float, mean_s: float, *, scv_s: float) -> float:
    """Pollaczek-Khinchine mean wait of an M/G/1 queue (exact), in seconds.

    ``Wq = rho/(1 - rho) * (1 + scv_s)/2 * E[S]`` with ``rho = lam * E[S]``.

    Args:
        lam: arrival rate, jobs/s, ``>= 0``.
        mean_s: mean service time ``E[S]``, seconds, ``> 0``.
        scv_s: squared coefficient of variation of service (constant 0, exponential 1).

    Returns:
        The mean wait, or ``math.inf`` when ``rho >= 1`` (the queue grows without bound).
    """
    require(mean_s > 0, "mean service time must be > 0 s", field="mean_s", value=mean_s)
    require(scv_s >= 0, "service SCV must be >= 0", field="scv_s", value=scv_s)
    rho = check_mmc(lam, 1 / mean_s, 1)
    if rho >= 1:
        return math.inf
    return rho / (1 - rho) * (1 + scv_s) / 2 * mean_s


def allen_cunneen_wait(lam: float, mu: float, c: int, *, scv_a: float, scv_s: float) -> float:
    """Allen-Cunneen G/G/c mean wait in seconds (approximate: compare within +-20%).

    ``Wq ~= Wq(M/M/c) * (scv_a + scv_s) / 2``.

    Args:
        scv_a: squared coefficient of variation of interarrival times, ``>= 0``.
        scv_s: squared coefficient of variation of service times, ``>= 0``.

    Returns:
        The approximate mean wait, or ``math.inf`` when ``rho >= 1``.
    """
    require(scv_a >= 0, "arrival SCV must be >= 0", field="scv_a", value=scv_a)
    require(scv_s >= 0, "service SCV must be >= 0", field="scv_s", value=scv_s)
    queue = mmc(lam, mu, c)
    if not queue.applies:
        return math.inf  # not inf * 0 = nan for scv_a = scv_s = 0
    return queue.wq * (scv_a + scv_s) / 2


def priority_waits(lams: Sequence[float], mu: float, c: int) -> list[float]:
    """Per-class mean waits of a non-preemptive priority M/M/c queue with equal ``mu``.

    ``W_q,k = W0 / ((1 - sigma_{k-1}) * (1 - sigma_k))``, ``W0 = C(c,a) / (c*mu)``,
    ``sigma_k = sum(lams[:k]) / (c*mu)``. Their ``lam``-weighted mean is the FCFS ``Wq``:
    priority only redistributes waiting.

    When the total load is unstable (``sigma_K >= 1``) the formula still holds for the
    classes whose own and higher load is below the workers' capacity (``sigma_k < 1``), with
    ``W0`` at its limit ``1/(c*mu)`` (every server busy, Erlang C = 1): they are served ahead
    of the backlog and keep a finite mean wait. The classes from the one that crosses
    ``sigma_k >= 1`` on wait ``math.inf``.

    Args:
        lams: arrival rate of each class, jobs/s, highest priority first.

    Returns:
        Mean wait in queue of each class, seconds, in the order of ``lams``.
    """
    require(len(lams) > 0, "need at least one class", field="lams", value=lams)
    require(all(x >= 0 for x in lams), "class rates must be >= 0", field="lams", value=lams)
    check_mmc(math.fsum(lams), mu, c)
    w0 = erlang_c(c, math.fsum(lams) / mu) / (c * mu)
    waits: list[float] = []
    sigma = 0.0
    for lam_k in lams:
        before, sigma = sigma, sigma + lam_k / (c * mu)
        waits.append(w0 / ((1 - before) * (1 - sigma)) if sigma < 1 else math.inf)
    return waits


def littles_law_l(lam: float, w: float) -> float:
    """Little's law ``L = lam * W``: jobs/s times seconds gives mean jobs in the system."""
    return lam * w


def staffing(lam: float, mu: float, *, max_p_wait: float) -> int:
    """Smallest worker count ``c`` with Erlang C ``C(c, lam/mu) <= max_p_wait``.

    Args:
        max_p_wait: largest acceptable probability of waiting, within ``(0, 1]``.

    Returns:
        The number of workers, always more than the offered load (so stable).
    """
    require(lam >= 0, "arrival rate must be >= 0 jobs/s", field="lam", value=lam)
    require(mu > 0, "service rate must be > 0 jobs/s", field="mu", value=mu)
    require(0 < max_p_wait <= 1, "must be within (0, 1]", field="max_p_wait", value=max_p_wait)
    a = lam / mu
    c = math.floor(a) + 1
    while erlang_c(c, a) > max_p_wait:
        c += 1
    return c
