"""E7 on the real queue: the retry budget as a rate limit on the retry task."""

from __future__ import annotations

from jobsim import RetryPolicy
from jobsim.sim.budget import RetryBudget, Storm
from jobsim.sim.budget_queue import retry_limit, simulate_on_queue


def test_retries_on_the_real_queue_obey_the_budget_rate_exactly() -> None:
    """A one-second storm with its middle 0.4 s failing: every request gets through (the
    rate limit delays retries, it never refuses them), no request makes more than r + 1
    attempts, and the retries' start times obey the token bucket exactly: at most
    ``burst + per_s * span`` in any window between two of them (µs of Redis time)."""
    storm = Storm(
        rate_per_s=20.0,
        duration_s=1.0,
        outage=(0.2, 0.6),
        max_retries=3,
        policy=RetryPolicy(kind="fixed", base_s=0.05),
        budget=RetryBudget(ratio=0.5, max_tokens=2.0),
        seed=3,
    )
    limit = retry_limit(storm)
    assert limit is not None and (limit.per_s, limit.burst) == (10.0, 2)
    attempts = simulate_on_queue(storm)
    firsts = attempts[attempts["number"] == 1]
    assert len(firsts) == firsts["job"].nunique() > 10
    assert attempts.groupby("job")["number"].max().le(storm.max_retries + 1).all()
    failed_in_outage = firsts[~firsts["ok"]]
    assert len(failed_in_outage) > 0  # the outage was hit, so there are retries to limit
    assert set(attempts["outcome"]) <= {"ok", "retry", "dead"}
    retries = sorted(round(t * 1e6) for t in attempts.loc[attempts["number"] > 1, "t_s"])
    assert len(retries) >= len(failed_in_outage)
    for i in range(len(retries)):
        for j in range(i + limit.burst, len(retries)):
            assert (j - i + 1) * 10**6 <= limit.burst * 10**6 + 10 * (retries[j] - retries[i])
