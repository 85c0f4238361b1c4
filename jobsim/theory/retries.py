"""Retries: attempts per job and dead-letter odds for a failure probability and a retry
limit, the mean backoff of each ``RetryPolicy`` kind, and the attempts a shared outage
costs (E6)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from jobsim.retry import KINDS, Kind
from jobsim.theory.inputs import check_retries, require


def expected_attempts(p: float, r: int | None) -> float:
    """Mean attempts per job: ``E[A] = (1 - p**(r+1)) / (1 - p)``; unlimited ``1/(1 - p)``."""
    check_retries(p, r)
    if r is None:
        return 1 / (1 - p)
    if p == 1:
        return float(r + 1)
    return (1 - p ** (r + 1)) / (1 - p)


def dead_letter_probability(p: float, r: int | None) -> float:
    """Probability that all ``r+1`` attempts fail: ``p**(r+1)`` (unlimited retries: 0)."""
    check_retries(p, r)
    return 0.0 if r is None else p ** (r + 1)


def attempts_variance(p: float, r: int | None) -> float:
    """Variance of the attempts count ``A = min(Geometric(1 - p), r + 1)``, in attempts².

    With ``n = r + 1``: ``Var[A] = 2*S - E[A] - E[A]**2`` where
    ``S = sum(k * p**(k-1), k=1..n) = (1 - (n+1)*p**n + n*p**(n+1)) / (1 - p)**2``;
    unlimited retries give ``p / (1 - p)**2``.
    """
    check_retries(p, r)
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
    require(lam >= 0, "arrival rate must be >= 0 jobs/s", field="lam", value=lam)
    return lam * expected_attempts(p, r)


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
    require(kind in KINDS, f"kind must be one of {', '.join(KINDS)}", field="kind", value=kind)
    require(n >= 1, "failure count must be >= 1", field="n", value=n)
    require(base_s >= 0, "base delay must be >= 0 s", field="base_s", value=base_s)
    require(cap_s >= base_s, "cap must be >= base_s", field="cap_s", value=cap_s)
    ceiling = min(cap_s, base_s * 2.0 ** min(n - 1, 60))  # beyond 2**60 every cap has won
    means = {"fixed": base_s, "exponential": ceiling, "full": ceiling / 2, "equal": 0.75 * ceiling}
    return means.get(kind)


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
    require(outage_s > 0, "outage must be > 0 s", field="outage_s", value=outage_s)
    require(0 <= max_retries <= 16, "retries within [0, 16]", field="max_retries",
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
