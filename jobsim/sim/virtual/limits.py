"""The simulated task's rate and concurrency limit on the virtual backend, kept as the
limiter's Lua keeps them (:mod:`jobsim.scripts.limiter`).

Every job of a run is of one task, so the Lua's parking comes to a gate in front of one
ready queue: a job parked over the limit keeps its score, ``unpark`` puts back the lowest
scores first, and an admitted job swaps with an older parked one, so the job leased is
always the best-scored of the queued and the parked, as the engine's ready heap gives it.
What the gate decides is when: a lease takes a token and a slot; tokens come back at
``per_s`` a model second up to ``burst`` (refilled on read by the whole µs since the last
lease, as the Lua's integer clock counts them; whole within ``EPS``; the next one due
``ceil`` µs ahead, as ``due_after`` computes it; all on the engine's clock of model µs, as
its queue scores are); a slot comes back once per lease end, whatever ends it (ack,
failure, timeout, expiry).

Example:
    >>> from jobsim.limits import RateLimit
    >>> gate = Gate(RateLimit(per_s=2, burst=1), None)
    >>> gate.room(0.0)
    1
    >>> gate.take(0.0)
    >>> gate.room(0.2), gate.next_token(0.2)
    (0, 0.5)
"""

from __future__ import annotations

import math

from jobsim.limits import RateLimit

EPS = 1e-9
"""A token is whole within this of it (the Lua's ``EPS``)."""
UNLIMITED = 1_000_000_000
"""``room`` without a rate (the Lua's bound)."""


class Gate:
    """One task's token bucket and slot count, on a clock of model µs.

    Args:
        rate: the token bucket in model time (``per_s`` a model second), or None.
        cap: most jobs leased at once, or None.
    """

    def __init__(self, rate: RateLimit | None, cap: int | None) -> None:
        self.us = 1e6  # µs of the clock per model second
        self.per_us = rate.per_s / 1e6 if rate is not None else 0.0
        self.burst = float(rate.burst) if rate is not None else 0.0
        self.cap = cap or 0
        self.tokens: float | None = None  # None: no bucket yet, so a full one
        self.last = 0.0  # the µs the tokens were counted at
        self.running = 0  # leases holding a slot

    def _bucket(self, now_us: float) -> tuple[float, float]:
        if self.tokens is None:
            return self.burst, now_us
        # whole µs since the last lease, as the Lua's integer clock counts them (a rounding
        # short of a whole µs is the whole µs), so room() and next_token() agree exactly
        elapsed = math.floor(max(0.0, now_us - self.last) + 1e-6)
        refill = self.tokens + elapsed * self.per_us
        return min(self.burst, refill), max(now_us, self.last)

    def room(self, t: float) -> int:
        """How many jobs may lease at model time ``t``."""
        n = UNLIMITED
        if self.per_us > 0:
            n = math.floor(self._bucket(t * self.us)[0] + EPS)
        if self.cap:
            n = min(n, self.cap - self.running)
        return max(n, 0)

    def take(self, t: float) -> None:
        """A lease at model time ``t`` takes a token and a slot."""
        if self.per_us > 0:
            tokens, last = self._bucket(t * self.us)
            self.tokens, self.last = tokens - 1, last
        if self.cap:
            self.running += 1

    def free(self) -> None:
        """A lease ended: its slot comes back."""
        if self.cap:
            self.running -= 1

    def next_token(self, t: float) -> float:
        """The model time after ``t`` when the next token is whole (``t`` if one is), or
        ``inf`` while every slot is taken: a freed slot, not time, opens the gate then.

        The Lua's ``NOW + ceil((1 - EPS - tokens) / rate)`` on its integer µs clock is
        ``last + ceil((1 - EPS - tokens at last) / rate)``, whatever ``NOW``: a grid
        anchored at the last lease, which is what this computes."""
        if self.cap and self.running >= self.cap:
            return math.inf
        if self.per_us <= 0 or self.tokens is None or self.room(t) >= 1:
            return t
        at = (self.last + math.ceil((1 - EPS - self.tokens) / self.per_us)) / self.us
        return at if at > t else t + 1 / self.us  # a rounding short of whole: a µs on


def gate_for(rate: RateLimit | None, cap: int | None) -> Gate | None:
    """The gate of a run's limits, or None when it has none."""
    if rate is None and cap is None:
        return None
    return Gate(rate, cap)
