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

import math
from collections.abc import Sequence
from dataclasses import dataclass

from jobsim.errors import InvalidInputError
from jobsim.retry import KINDS, Kind


def _require(ok: bool, message: str, *, field: str, value: object) -> None:
    # Every check is phrased so that it is False for NaN, which is rejected with the rest.
    if not ok:
        raise InvalidInputError(f"{message}, got {field}={value!r}", field=field, value=value)


def _check_mmc(lam: float, mu: float, c: int) -> float:
    """Validate the rates and return ``rho`` (which may be >= 1: that is not an input error)."""
    _require(lam >= 0, "arrival rate must be >= 0 jobs/s", field="lam", value=lam)
    _require(mu > 0, "service rate must be > 0 jobs/s", field="mu", value=mu)
    _require(c >= 1, "need at least one worker", field="c", value=c)
    return lam / (c * mu)


def unstable_reason(rho: float) -> str:
    """Why no steady-state formula applies at utilisation ``rho``, or ``""`` when ``rho < 1``.

    Example:
        >>> unstable_reason(1.0)
        'unstable: rho = 1.00 >= 1, the queue grows without bound'
        >>> unstable_reason(0.5)
        ''
    """
    _require(rho >= 0, "utilisation must be >= 0", field="rho", value=rho)
    if rho < 1:
        return ""
    return f"unstable: rho = {rho:.2f} >= 1, the queue grows without bound"


def _check_retries(p: float, r: int | None) -> None:
    _require(0 <= p <= 1, "failure probability must be within [0, 1]", field="p", value=p)
    _require(r is None or r >= 0, "retry limit must be >= 0 or None", field="r", value=r)
    _require(r is not None or p < 1, "p = 1 with unlimited retries never ends", field="p", value=p)


def erlang_b(c: int, a: float) -> float:
    """Erlang B: probability that an M/M/c/c arrival finds every server busy.

    Stable recursion: ``B(0,a) = 1``, ``B(k,a) = a*B(k-1,a) / (k + a*B(k-1,a))``.

    Args:
        c: number of servers, ``>= 0``.
        a: offered load ``lam/mu`` in erlangs, ``>= 0``.

    Returns:
        The blocking probability, within ``[0, 1]``.
    """
    _require(c >= 0, "server count must be >= 0", field="c", value=c)
    _require(a >= 0, "offered load must be >= 0", field="a", value=a)
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
    _require(c >= 1, "need at least one worker", field="c", value=c)
    _require(a >= 0, "offered load must be >= 0", field="a", value=a)
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
        _require(t >= 0, "wait must be >= 0 s", field="t", value=t)
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
        _require(0 <= q < 1, "quantile must be within [0, 1)", field="q", value=q)
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
    rho = _check_mmc(lam, mu, c)
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
    _require(mean_s > 0, "mean service time must be > 0 s", field="mean_s", value=mean_s)
    _require(scv_s >= 0, "service SCV must be >= 0", field="scv_s", value=scv_s)
    rho = _check_mmc(lam, 1 / mean_s, 1)
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
    _require(scv_a >= 0, "arrival SCV must be >= 0", field="scv_a", value=scv_a)
    _require(scv_s >= 0, "service SCV must be >= 0", field="scv_s", value=scv_s)
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
    _require(len(lams) > 0, "need at least one class", field="lams", value=lams)
    _require(all(x >= 0 for x in lams), "class rates must be >= 0", field="lams", value=lams)
    _check_mmc(math.fsum(lams), mu, c)
    w0 = erlang_c(c, math.fsum(lams) / mu) / (c * mu)
    waits: list[float] = []
    sigma = 0.0
    for lam_k in lams:
        before, sigma = sigma, sigma + lam_k / (c * mu)
        waits.append(w0 / ((1 - before) * (1 - sigma)) if sigma < 1 else math.inf)
    return waits


def expected_attempts(p: float, r: int | None) -> float:
    """Mean attempts per job: ``E[A] = (1 - p**(r+1)) / (1 - p)``; unlimited ``1/(1 - p)``."""
    _check_retries(p, r)
    if r is None:
        return 1 / (1 - p)
    if p == 1:
        return float(r + 1)
    return (1 - p ** (r + 1)) / (1 - p)


def dead_letter_probability(p: float, r: int | None) -> float:
    """Probability that all ``r+1`` attempts fail: ``p**(r+1)`` (unlimited retries: 0)."""
    _check_retries(p, r)
    return 0.0 if r is None else p ** (r + 1)


def attempts_variance(p: float, r: int | None) -> float:
    """Variance of the attempts count ``A = min(Geometric(1 - p), r + 1)``, in attempts².

    With ``n = r + 1``: ``Var[A] = 2*S - E[A] - E[A]**2`` where
    ``S = sum(k * p**(k-1), k=1..n) = (1 - (n+1)*p**n + n*p**(n+1)) / (1 - p)**2``;
    unlimited retries give ``p / (1 - p)**2``.
    """
    _check_retries(p, r)
    if r is None:
        return p / (1 - p) ** 2
    if p == 1:
        return 0.0
    n = r + 1
    s = (1 - (n + 1) * p**n + n * p ** (n + 1)) / (1 - p) ** 2
    mean = expected_attempts(p, r)
    return max(0.0, 2 * s - mean - mean**2)  # rounding may leave -1e-16 where Var is 0


def effective_arrival_rate(lam: float, p: float, r: int | None) -> float:
    """Attempts reaching the workers with immediate retries: ``lam * E[A]``, attempts/s.

    With unlimited retries this is ``lam / (1 - p)``, the Jackson-network rate to give
    ``mmc()``.
    """
    _require(lam >= 0, "arrival rate must be >= 0 jobs/s", field="lam", value=lam)
    return lam * expected_attempts(p, r)


def littles_law_l(lam: float, w: float) -> float:
    """Little's law ``L = lam * W``: jobs/s times seconds gives mean jobs in the system."""
    return lam * w


def binomial_band(q: float, n: int, *, k: float = 4.0) -> float:
    """Half-width ``k * sqrt(q*(1 - q)/n)`` of the band for a proportion from ``n`` trials.

    Args:
        q: the theoretical probability, within ``[0, 1]``.
        n: number of trials, ``>= 1``.
        k: band width in standard errors.
    """
    _require(0 <= q <= 1, "probability must be within [0, 1]", field="q", value=q)
    _require(n >= 1, "need at least one trial", field="n", value=n)
    return k * math.sqrt(q * (1 - q) / n)


def mean_band(sd: float, n: int, *, k: float = 4.0) -> float:
    """Half-width ``k * sd / sqrt(n)`` of the band for a mean of ``n`` samples (their unit).

    Args:
        sd: standard deviation of one sample, ``>= 0``.
        n: number of independent samples, ``>= 1``.
        k: band width in standard errors.
    """
    _require(sd >= 0, "standard deviation must be >= 0", field="sd", value=sd)
    _require(n >= 1, "need at least one sample", field="n", value=n)
    return k * sd / math.sqrt(n)


def staffing(lam: float, mu: float, *, max_p_wait: float) -> int:
    """Smallest worker count ``c`` with Erlang C ``C(c, lam/mu) <= max_p_wait``.

    Args:
        max_p_wait: largest acceptable probability of waiting, within ``(0, 1]``.

    Returns:
        The number of workers, always more than the offered load (so stable).
    """
    _require(lam >= 0, "arrival rate must be >= 0 jobs/s", field="lam", value=lam)
    _require(mu > 0, "service rate must be > 0 jobs/s", field="mu", value=mu)
    _require(0 < max_p_wait <= 1, "must be within (0, 1]", field="max_p_wait", value=max_p_wait)
    a = lam / mu
    c = math.floor(a) + 1
    while erlang_c(c, a) > max_p_wait:
        c += 1
    return c


def expected_backoff_s(kind: Kind, n: int, *, base_s: float, cap_s: float) -> float | None:
    """Mean delay of ``RetryPolicy(kind=kind, base_s=base_s, cap_s=cap_s)`` after ``n`` failures.

    With ``e = min(cap_s, base_s * 2**(n-1))``: fixed ``base_s``, exponential ``e``, full
    jitter ``e/2``, equal jitter ``3e/4``. ``n`` counts failures as ``jobsim.retry`` does
    (the first retry waits ``base_s``); docs/experiments.md's ``2**n`` counts from 0 instead.

    Args:
        kind: one of ``fixed``, ``exponential``, ``full``, ``equal``, ``decorrelated``.
        n: failures so far, ``>= 1``.
        base_s: first delay, seconds, ``>= 0``.
        cap_s: largest delay, seconds, ``>= base_s``.

    Returns:
        The mean delay in seconds, or ``None`` for ``decorrelated``: each of its delays
        depends on the previous draw, so its mean has no closed form here.
    """
    _require(kind in KINDS, f"kind must be one of {', '.join(KINDS)}", field="kind", value=kind)
    _require(n >= 1, "failure count must be >= 1", field="n", value=n)
    _require(base_s >= 0, "base delay must be >= 0 s", field="base_s", value=base_s)
    _require(cap_s >= base_s, "cap must be >= base_s", field="cap_s", value=cap_s)
    ceiling = min(cap_s, base_s * 2.0 ** min(n - 1, 60))  # beyond 2**60 every cap has won
    means = {"fixed": base_s, "exponential": ceiling, "full": ceiling / 2, "equal": 0.75 * ceiling}
    return means.get(kind)


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
    _require(lease_s > 0, "lease must be > 0 s", field="lease_s", value=lease_s)
    _require(0 < heartbeat_s <= lease_s, "heartbeat within (0, lease]", field="heartbeat_s",
             value=heartbeat_s)  # fmt: skip
    m, h = mean_service_s, heartbeat_s
    _require(m > 0, "mean service time must be > 0 s", field="mean_service_s", value=m)
    _require(c >= 1, "need at least one worker", field="c", value=c)
    _require(0 <= p_all_busy <= 1, "probability within [0, 1]", field="p_all_busy",
             value=p_all_busy)  # fmt: skip
    e = math.exp(-h / m)
    i1 = 2 * m * (1 - e) - h * e
    i2 = 3 * m * m - e * (h * h + 3 * h * m + 3 * m * m)
    return lease_s - (i1 - i2 / h) + p_all_busy * m / c


def outage_attempts(
    kind: Kind, *, outage_s: float, base_s: float, cap_s: float, max_retries: int
) -> float | None:
    """Mean attempts per job after a shared outage (E6): every job's first attempt is at 0,
    each attempt before ``outage_s`` fails at once (instant service, idle workers) and is
    retried after ``RetryPolicy(kind=kind, base_s=base_s, cap_s=cap_s)``'s delay.

    The m-th retry starts at ``T_m = D_1 + ... + D_m`` and happens if the one before failed,
    so ``E[A] = 1 + sum(P(T_m < outage_s), m = 0..r-1)``, ``T_0 = 0``. With
    ``e_n = min(cap_s, base_s * 2**(n-1))``: fixed and exponential delays are constants;
    full jitter ``D_n ~ U(0, e_n)`` and equal jitter ``e_n/2 + U(0, e_n/2)``, whose sums of
    uniforms have the exact distribution
    ``P(sum U(0, a_i) < t) = sum_S (-1)^|S| (t - sum_S a_i)_+^m / (m! prod a_i)`` over the
    subsets ``S`` of the m widths.

    Args:
        kind: one of ``fixed``, ``exponential``, ``full``, ``equal``, ``decorrelated``.
        outage_s: how long the dependency is down from 0, seconds, ``> 0``.
        base_s, cap_s: the policy's first and largest delay, seconds.
        max_retries: retries per job ``r``, ``0 <= r <= 16``.

    Returns:
        Mean attempts per job, or ``None`` for ``decorrelated`` (no closed form here).

    Example:
        >>> outage_attempts("exponential", outage_s=1.0, base_s=0.2, cap_s=1.6, max_retries=8)
        4.0
    """
    _require(outage_s > 0, "outage must be > 0 s", field="outage_s", value=outage_s)
    _require(0 <= max_retries <= 16, "retries within [0, 16]", field="max_retries",
             value=max_retries)  # fmt: skip
    means = [
        expected_backoff_s(kind, n, base_s=base_s, cap_s=cap_s) for n in range(1, max_retries + 1)
    ]  # fmt: skip  (validates kind, base, cap)
    if kind == "decorrelated":
        return None
    ceilings = [min(cap_s, base_s * 2.0 ** min(n - 1, 60)) for n in range(1, max_retries + 1)]
    total = 1.0
    for m in range(max_retries):
        if kind in ("fixed", "exponential"):
            fixed, widths = math.fsum(means[:m]), []  # type: ignore[arg-type]
        elif kind == "full":
            fixed, widths = 0.0, ceilings[:m]
        else:  # equal jitter: half fixed, half uniform
            fixed, widths = math.fsum(ceilings[:m]) / 2, [e / 2 for e in ceilings[:m]]
        total += _uniform_sum_below(outage_s - fixed, [w for w in widths if w > 0])
    return total


def _uniform_sum_below(t: float, widths: Sequence[float]) -> float:
    """``P(sum of independent U(0, w) over widths < t)``, exactly (inclusion-exclusion)."""
    if t <= 0:
        return 0.0
    if t >= math.fsum(widths):
        return 1.0
    m = len(widths)
    total = 0.0
    for mask in range(1 << m):
        shift = math.fsum(w for i, w in enumerate(widths) if mask >> i & 1)
        if shift < t:
            total += (-1) ** bin(mask).count("1") * (t - shift) ** m
    return total / (math.factorial(m) * math.prod(widths))
