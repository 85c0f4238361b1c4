"""Retry backoff policies (Brooker, "Exponential Backoff And Jitter").

With ``n`` the number of failures so far (1 after the first), ``base``, ``cap``:

=================  ==============================================
``fixed``          ``base``
``exponential``    ``min(cap, base * 2**(n-1))``
``full``           ``U(0, exponential)``
``equal``          ``exponential/2 + U(0, exponential/2)``
``decorrelated``   ``min(cap, U(base, 3 * previous))``, previous starts at base
=================  ==============================================
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Literal

from jobsim.errors import InvalidInputError

Kind = Literal["fixed", "exponential", "full", "equal", "decorrelated"]
KINDS: tuple[Kind, ...] = ("fixed", "exponential", "full", "equal", "decorrelated")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How long a failed job waits before its next attempt.

    Example:
        >>> policy = RetryPolicy(kind="full", base_s=0.1, cap_s=5.0)
        >>> 0.0 <= policy.delay_s(3, rng=random.Random(1)) <= 0.4
        True

    Args:
        kind: one of ``fixed``, ``exponential``, ``full``, ``equal``, ``decorrelated``.
        base_s: the first delay (fixed: every delay), in seconds.
        cap_s: the largest delay, in seconds.
    """

    kind: Kind = "exponential"
    base_s: float = 0.05
    cap_s: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInputError(
                f"retry kind must be one of {', '.join(KINDS)}, not {self.kind!r}",
                field="kind",
                value=self.kind,
            )
        if not self.base_s >= 0:
            raise InvalidInputError("base_s must be >= 0", field="base_s", value=self.base_s)
        if not self.cap_s >= self.base_s:
            raise InvalidInputError("cap_s must be >= base_s", field="cap_s", value=self.cap_s)

    @classmethod
    def immediate(cls) -> RetryPolicy:
        """Retry at once (no backoff): the queue then behaves as a Jackson network."""
        return cls(kind="fixed", base_s=0.0, cap_s=0.0)

    def scaled(self, factor: float) -> RetryPolicy:
        """The same policy with every duration multiplied by ``factor`` (e.g. model to wall
        seconds: the delays it draws scale with it, jitter included).

        Example:
            >>> RetryPolicy(kind="full", base_s=2.0, cap_s=10.0).scaled(0.01)
            RetryPolicy(kind='full', base_s=0.02, cap_s=0.1)

        Raises:
            InvalidInputError: ``factor`` is not a finite number > 0.
        """
        if not (math.isfinite(factor) and factor > 0):
            raise InvalidInputError("factor must be a finite number > 0", field="factor",
                                    value=factor)  # fmt: skip
        return replace(self, base_s=self.base_s * factor, cap_s=self.cap_s * factor)

    def exponential_s(self, failures: int) -> float:
        """The capped exponential delay after ``failures`` failures, before any jitter."""
        exponent = min(max(failures - 1, 0), 60)  # 2**60 * base overflows every cap anyway
        return float(min(self.cap_s, self.base_s * 2.0**exponent))

    def delay_s(
        self, failures: int, *, previous_s: float | None = None, rng: random.Random
    ) -> float:
        """The delay before the next attempt.

        Args:
            failures: failures so far, 1 after the first failed attempt.
            previous_s: the previous delay (decorrelated jitter only); ``None`` the first time.
            rng: the seeded generator every random draw comes from.

        Returns:
            Seconds to wait, within ``[0, cap_s]``.
        """
        if self.kind == "fixed":
            return self.base_s
        ceiling = self.exponential_s(failures)
        if self.kind == "exponential":
            return ceiling
        if self.kind == "full":
            return rng.uniform(0.0, ceiling)
        if self.kind == "equal":
            return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
        previous = self.base_s if previous_s is None else previous_s
        return min(self.cap_s, rng.uniform(self.base_s, max(self.base_s, 3 * previous)))
