"""Bands for statistical checks: how far a measured proportion or mean may fall from the
theory, in standard errors."""

from __future__ import annotations

import math

from jobsim.theory.inputs import require


def binomial_band(q: float, n: int, *, k: float = 4.0) -> float:
    """Half-width ``k * sqrt(q*(1 - q)/n)`` of the band for a proportion from ``n`` trials.

    Args:
        q: the theoretical probability, within ``[0, 1]``.
        n: number of trials, ``>= 1``.
        k: band width in standard errors.
    """
    require(0 <= q <= 1, "probability must be within [0, 1]", field="q", value=q)
    require(n >= 1, "need at least one trial", field="n", value=n)
    return k * math.sqrt(q * (1 - q) / n)


def mean_band(sd: float, n: int, *, k: float = 4.0) -> float:
    """Half-width ``k * sd / sqrt(n)`` of the band for a mean of ``n`` samples (their unit).

    Args:
        sd: standard deviation of one sample, ``>= 0``.
        n: number of independent samples, ``>= 1``.
        k: band width in standard errors.
    """
    require(sd >= 0, "standard deviation must be >= 0", field="sd", value=sd)
    require(n >= 1, "need at least one sample", field="n", value=n)
    return k * sd / math.sqrt(n)
