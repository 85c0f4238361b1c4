"""Which formulas of :mod:`jobsim.theory` apply to a workload, and what they predict.

Every prediction is in model units. A formula is included only when its assumptions hold:

- retries (any workload with failures): attempts per job and the dead-letter probability;
- Poisson arrivals and exponential service: M/M/c (Erlang C) at the effective arrival rate
  λ·E[A] (retries go straight back into the queue); with several priority classes, the
  non-preemptive priority waits;
- Poisson arrivals, one worker, any service: Pollaczek-Khinchine (exact);
- renewal arrivals otherwise: Allen-Cunneen (approximate, within about 20%).
"""

from __future__ import annotations

import math
from typing import Any

from jobsim import theory
from jobsim.sim.workload import Exponential, Poisson, Workload


def predictions(
    workload: Workload,
    workers: int,
    *,
    mean_service_s: float | None = None,
    arrival_rate_per_s: float | None = None,
) -> dict[str, Any]:
    """The predictions that apply to ``workload`` served by ``workers`` workers.

    Args:
        mean_service_s: use this mean service time (e.g. the measured one, which includes
            the queue's own overhead) instead of the workload's.
        arrival_rate_per_s: use this arrival rate (e.g. the one the run's draws realised).
    """
    out: dict[str, Any] = {}
    p, r = workload.fail_probability, workload.max_retries
    attempts = theory.expected_attempts(p, r)
    if p > 0:
        out["attempts_per_job"] = attempts
        out["dead_letter_rate"] = theory.dead_letter_probability(p, r)
    lam = workload.arrival_rate_per_s if arrival_rate_per_s is None else arrival_rate_per_s
    service = workload.service
    mean_s = service.mean_s if mean_service_s is None else mean_service_s
    if not math.isfinite(lam) or mean_s <= 0:
        return out
    lam_eff, mu = lam * attempts, 1.0 / mean_s
    rho = lam_eff / (workers * mu)
    out["utilisation"] = rho
    if rho >= 1:
        out["stable"] = False
        return out
    poisson, exponential = isinstance(workload.arrival, Poisson), isinstance(service, Exponential)
    if poisson and workload.arrival.scv == 1.0 and exponential:
        mmc = theory.mmc(lam_eff, mu, workers)
        out.update(model="M/M/c", wait_s=mmc.wq, sojourn_s=mmc.w, p_wait=mmc.p_wait)
        classes = workload.class_rates()
        if len(classes) > 1 and p == 0:
            waits = theory.priority_waits([rate for _, rate in classes], mu, workers)
            out["wait_s_by_priority"] = {
                str(prio): w for (prio, _), w in zip(classes, waits, strict=True)
            }
    elif poisson and workers == 1 and p == 0:
        wq = theory.mg1_wait(lam, mean_s, scv_s=service.scv)
        out.update(model="M/G/1", wait_s=wq, sojourn_s=wq + mean_s)
    elif math.isfinite(workload.arrival.scv) and p == 0:
        wq = theory.allen_cunneen_wait(
            lam, mu, workers, scv_a=workload.arrival.scv, scv_s=service.scv
        )
        out.update(model="G/G/c (Allen-Cunneen)", wait_s=wq, sojourn_s=wq + mean_s)
    return out
