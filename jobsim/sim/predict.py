"""Which formulas of :mod:`jobsim.theory` apply to a run, and what they predict.

Every prediction is in model units. A formula is included only when its assumptions hold:

- retries: attempts per job and the dead-letter probability, at the per-attempt failure
  probability of the workload and the fault plan together (not with poison jobs, which
  fail by design);
- Poisson arrivals and exponential service: M/M/c (Erlang C) at the effective arrival rate
  λ·E[A] (a retried job re-enters the queue); a job's sojourn is E[A] visits plus the
  expected backoffs; with several priority classes and strict priority (no aging, no
  retries), the non-preemptive priority waits;
- Poisson arrivals, one worker, no retries: Pollaczek-Khinchine (exact);
- renewal arrivals otherwise, no retries: Allen-Cunneen (approximate, within about 20%).

Queueing formulas are left out when the fault plan breaks their assumptions (crashes,
spikes, a slow worker, Redis faults, queue pauses) or a queue feature does (a rate limit;
random delays; a fixed delay with aging), and say so in ``note``. A concurrency limit of
``k`` below the worker count makes the run a ``k``-server queue (exactly: the twin's starts
are those of ``k`` workers), and a fixed delay ``D`` shifts every job's due time by ``D``,
so the wait and sojourn are the undelayed ones plus ``D`` (no ``p_wait``: every job waits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from jobsim import theory
from jobsim.sim.faults import FaultPlan
from jobsim.sim.setup import Setup
from jobsim.sim.workload import Exponential, Fixed, Poisson, Workload


@dataclass(frozen=True, kw_only=True)
class Prediction:
    """What the theory predicts for a run, in model units; ``None`` where no formula applies.

    Example:
        >>> p = Prediction(utilisation=1.2, stable=False)
        >>> p.applies, p.reason
        (False, 'unstable: rho = 1.20 >= 1, the queue grows without bound')
    """

    attempts_per_job: float | None = None
    dead_letter_rate: float | None = None
    note: str | None = None  # why the queueing formulas were left out
    utilisation: float | None = None  # rho = lambda * E[A] * E[S] / c
    stable: bool | None = None  # None: no utilisation (no rate, or formulas left out)
    model: str | None = None  # M/M/c, M/G/1 or G/G/c (Allen-Cunneen)
    wait_s: float | None = None
    p_wait: float | None = None  # Erlang C, M/M/c only
    sojourn_s: float | None = None
    wait_s_by_priority: Mapping[str, float] = field(default_factory=dict)

    @property
    def applies(self) -> bool:
        """Whether a queueing formula gives a mean wait for the run (see :attr:`reason`)."""
        return self.wait_s is not None

    @property
    def reason(self) -> str:
        """Why no queueing formula applies (``""`` when one does), e.g. ``"unstable:
        rho = 1.05 >= 1, the queue grows without bound"``: print it where a number would be."""
        return self.caveat

    @property
    def caveat(self) -> str:
        """Why there is no wait prediction, or ``""`` when there is one."""
        if self.note:
            return self.note
        if self.stable is False and self.utilisation is not None:
            return theory.unstable_reason(self.utilisation)  # the words jobsim.theory uses
        if self.wait_s is None:
            return "no queueing formula applies to this workload"
        return ""

    def as_dict(self) -> dict[str, Any]:
        """The predictions that apply, as JSON-ready fields (absent ones left out), with
        ``applies`` and ``reason`` always present, so a reader checks those, never a key."""
        out: dict[str, Any] = {"applies": self.applies, "reason": self.reason}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name == "wait_s_by_priority" and not value):
                continue
            out[f.name] = dict(value) if isinstance(value, Mapping) else value
        return out


def predictions(
    workload: Workload,
    setup: Setup,
    faults: FaultPlan | None = None,
    *,
    mean_service_s: float | None = None,
    arrival_rate_per_s: float | None = None,
) -> Prediction:
    """The predictions that apply to ``workload`` run with ``setup`` and ``faults``.

    Args:
        mean_service_s: use this mean service time (e.g. the measured one, which includes
            the queue's own overhead) instead of the workload's.
        arrival_rate_per_s: use this arrival rate (e.g. the one the run's draws realised).
    """
    faults = faults or FaultPlan()
    out: dict[str, Any] = {}
    p = 1 - (1 - workload.fail_probability) * (1 - faults.exception_probability)
    r = workload.max_retries
    attempts = theory.expected_attempts(p, r)
    if p > 0 and not faults.poison:
        out["attempts_per_job"] = attempts
        out["dead_letter_rate"] = theory.dead_letter_probability(p, r)
    if _breaks_queueing(faults):
        out["note"] = "queueing formulas left out: the fault plan breaks their assumptions"
        return Prediction(**out)
    broken = _broken_by_features(workload, setup)
    if broken:
        out["note"] = f"queueing formulas left out: {broken}"
        return Prediction(**out)
    out.update(_queueing(workload, setup, p, attempts, mean_service_s, arrival_rate_per_s))
    if isinstance(workload.delay, Fixed) and out.get("wait_s") is not None:
        d = workload.delay.seconds
        out["wait_s"] += d
        out["p_wait"] = None
        if out.get("sojourn_s") is not None:
            out["sojourn_s"] += d
        out["wait_s_by_priority"] = {k: w + d for k, w in out.get("wait_s_by_priority", {}).items()}
    return Prediction(**out)


def _broken_by_features(workload: Workload, setup: Setup) -> str:
    """Why a queue feature of the run breaks the formulas' assumptions (``""``: none)."""
    if setup.rate_limit is not None:
        return "a rate limit holds leases back"
    if workload.delay is not None and not isinstance(workload.delay, Fixed):
        return "random delays reorder the jobs' due times"
    if workload.delay is not None and setup.aging_s is not None:
        return "a delay moves each job's aging clock"
    return ""


def servers(setup: Setup) -> int:
    """How many jobs run at once at most: the workers, or fewer under a concurrency limit.

    Example:
        >>> servers(Setup(workers=5, concurrency_limit=2))
        2
    """
    cap = setup.concurrency_limit
    return setup.workers if cap is None else min(setup.workers, cap)


def _queueing(
    workload: Workload,
    setup: Setup,
    p: float,
    attempts: float,
    mean_service_s: float | None,
    arrival_rate_per_s: float | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    r = workload.max_retries
    lam = workload.arrival_rate_per_s if arrival_rate_per_s is None else arrival_rate_per_s
    service = workload.service
    mean_s = service.mean_s if mean_service_s is None else mean_service_s
    if not (math.isfinite(lam) and math.isfinite(mean_s)) or mean_s <= 0:
        return out  # nothing measured (no attempt finished), or no arrival rate
    lam_eff, mu, c = lam * attempts, 1.0 / mean_s, servers(setup)
    out["utilisation"] = float(lam_eff / (c * mu))
    out["stable"] = bool(lam_eff < c * mu)  # a plain bool, also for numpy inputs
    if not out["stable"]:
        return out
    if isinstance(workload.arrival, Poisson) and isinstance(service, Exponential):
        mmc = theory.mmc(lam_eff, mu, c)
        backoff = _expected_backoff_s(p, r, setup)
        out.update(model="M/M/c", wait_s=mmc.wq, p_wait=mmc.p_wait)
        if backoff is not None:
            out["sojourn_s"] = attempts * mmc.w + backoff
        classes = workload.class_rates()
        if len(classes) > 1 and p == 0 and setup.aging_s is None:
            # the class mix at the rate the stability check used (nominal or realised)
            total = sum(rate for _, rate in classes)
            waits = theory.priority_waits([rate * lam_eff / total for _, rate in classes], mu, c)
            out["wait_s_by_priority"] = {
                str(prio): w for (prio, _), w in zip(classes, waits, strict=True)
            }
    elif p > 0:
        return out
    elif isinstance(workload.arrival, Poisson) and c == 1:
        wq = theory.mg1_wait(lam, mean_s, scv_s=service.scv)
        out.update(model="M/G/1", wait_s=wq, sojourn_s=wq + mean_s)
    elif math.isfinite(workload.arrival.scv):
        wq = theory.allen_cunneen_wait(lam, mu, c, scv_a=workload.arrival.scv, scv_s=service.scv)
        out.update(model="G/G/c (Allen-Cunneen)", wait_s=wq, sojourn_s=wq + mean_s)
    return out


def _breaks_queueing(faults: FaultPlan) -> bool:
    return bool(
        faults.poison
        or faults.spikes
        or faults.outages
        or faults.worker_crashes
        or faults.redis_drops
        or faults.redis_pauses
        or faults.redis_restart
        or faults.slow_worker_factor > 1
        or faults.queue_pauses
    )


def _expected_backoff_s(p: float, r: int, setup: Setup) -> float | None:
    """Expected total backoff of a job, model seconds: the k-th backoff happens when the
    first k attempts failed (probability p^k), for k = 1..r. None for decorrelated jitter,
    whose mean has no closed form here."""
    policy = setup.retry
    total = 0.0
    for k in range(1, r + 1):
        mean = theory.expected_backoff_s(policy.kind, k, base_s=policy.base_s, cap_s=policy.cap_s)
        if mean is None:
            return None
        total += p**k * mean
    return total
