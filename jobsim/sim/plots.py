"""Charts of a run (or a sweep), each with a title, labelled axes and units, and the theory
drawn beside the measurement where a formula applies. Times are model seconds.

Every function takes an optional matplotlib ``Axes`` and returns the one it drew on.
"""

from __future__ import annotations

import math
import os
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobsim import theory
from jobsim.sim.timing import throughput

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from jobsim.sim.result import RunResult

_OUTCOME_COLOURS = {
    "completed": "tab:green",
    "retry": "tab:orange",
    "failed": "tab:red",
    "expired": "tab:purple",
    "crashed": "tab:brown",
    "timeout": "tab:pink",
    "interrupted": "tab:gray",
    "running": "tab:blue",
}


def axes(ax: Axes | None = None) -> Axes:
    """``ax``, or new axes on a new figure (7 x 4 inches) when ``ax`` is None: what every
    chart helper of :mod:`jobsim.sim.plots` and :mod:`jobsim.sim.charts` draws on."""
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("charts need matplotlib: pip install 'jobsim[sim]'") from exc
    _, new = plt.subplots(figsize=(7, 4))
    return new


def throughput_over_time(
    result: RunResult, *, bin_s: float | None = None, ax: Axes | None = None
) -> Axes:
    """Jobs finished per model second, completed and dead-lettered, with the arrival rate."""
    ax = axes(ax)
    jobs = result.jobs
    span = float(jobs["finished"].max() or 1.0)
    frame = throughput(jobs, bin_s=bin_s or max(span / 40, 1e-9))
    ax.plot(frame["t"], frame["completed"], label="completed", color="tab:green")
    ax.plot(frame["t"], frame["failed"], label="dead-lettered", color="tab:red")
    rate = result.workload.arrival_rate_per_s
    if math.isfinite(rate):
        ax.axhline(rate, linestyle="--", color="gray", label=f"arrival rate {rate:g}/s")
    ax.set(
        title="Throughput over time", xlabel="time (model s)", ylabel="jobs finished per model s"
    )
    ax.legend()
    return ax


def wait_vs_theory(result: RunResult, *, ax: Axes | None = None) -> Axes:
    """The measured distribution of waits, P(wait > t), beside what the theory predicts.

    M/M/c with one class: the Erlang C tail. Several priority classes: one measured curve
    per class and the non-preemptive priority formula's mean wait of each class, dashed
    (the formula gives means, not a tail). Another formula (M/G/1, Allen-Cunneen): its mean
    wait, dashed. No formula: the title says why, and no theory is drawn.
    """
    ax = axes(ax)
    predicted = result.summary.theory
    by_class = dict(predicted.wait_s_by_priority)
    jobs = result.steady_jobs
    if by_class:
        groups = [(f"priority {p}", g) for p, g in jobs.groupby("priority", sort=False)]
        groups.sort(key=lambda pair: -int(str(pair[1]["priority"].iloc[0])))
    else:
        groups = [("measured", jobs)]
    top = 0.0
    for i, (label, group) in enumerate(groups):
        waits = np.sort(group["wait_s"].dropna().to_numpy())
        if not waits.size:
            continue
        top = max(top, float(waits.max()))
        survival = 1.0 - np.arange(1, waits.size + 1) / waits.size
        ax.step(waits, survival, where="post", color=f"C{i}", label=f"{label}, measured")
        if by_class:
            mean = by_class.get(str(group["priority"].iloc[0]))
            if mean is not None:
                ax.axvline(mean, linestyle="--", color=f"C{i}",
                           label=f"{label}, formula mean {mean:.3g} s")  # fmt: skip
    title = "Waiting time vs theory"
    if not predicted.applies:
        title = f"Waiting time (no theory: {textwrap.shorten(predicted.reason, 60)})"
    elif by_class:
        title = "Waiting time by priority vs the priority formula"
    elif predicted.model == "M/M/c" and predicted.p_wait is not None and top > 0:
        p_wait, wait = predicted.p_wait, float(predicted.wait_s or 0.0)
        t = np.linspace(0, top, 200)
        ax.plot(t, p_wait * np.exp(-t * p_wait / wait) if wait > 0 else 0 * t, "--",
                color="black", label="Erlang C tail")  # fmt: skip
    elif predicted.wait_s is not None:
        ax.axvline(predicted.wait_s, linestyle="--", color="black",
                   label=f"{predicted.model} mean {predicted.wait_s:.3g} s")  # fmt: skip
    ax.set_yscale("log")
    ax.set(title=title, xlabel="wait before first start (model s, after warm-up)",
           ylabel="P(wait > t)")  # fmt: skip
    ax.legend(fontsize=8)
    return ax


def attempts_histogram(result: RunResult, *, ax: Axes | None = None) -> Axes:
    """Attempts per job, measured and as the truncated geometric law predicts."""
    ax = axes(ax)
    w = result.workload
    counts = result.jobs["attempts"].value_counts().sort_index()
    n = len(result.jobs)
    ks = np.arange(1, w.max_retries + 2)
    ax.bar(counts.index, counts.to_numpy() / n, width=0.6, label="measured")
    p, r = w.fail_probability, w.max_retries
    predicted = [p ** (k - 1) * (1 - p) if k <= r else p**r for k in ks]
    ax.plot(ks, predicted, "o--", color="black", label=f"theory (p={p:g}, r={r})")
    ax.set(title="Attempts per job", xlabel="attempts", ylabel="share of jobs", xticks=ks)
    ax.legend()
    return ax


def dead_letter_vs_failure(
    sweep: pd.DataFrame, *, max_retries: int, ax: Axes | None = None
) -> Axes:
    """Dead-letter rate against the failure probability, from a sweep over
    ``fail_probability``, beside p^(r+1) and its binomial band."""
    ax = axes(ax)
    frame = sweep.groupby("fail_probability", as_index=False).agg(
        rate=("dead_letter_rate", "mean"), n=("submitted", "sum")
    )
    ax.plot(frame["fail_probability"], frame["rate"], "o", label="measured")
    ps = np.linspace(0, float(frame["fail_probability"].max()), 100)
    q = ps ** (max_retries + 1)
    ax.plot(ps, q, "--", label=f"p^(r+1), r={max_retries}")
    n = float(frame["n"].mean())
    band = [theory.binomial_band(float(x), round(n)) for x in q]
    ax.fill_between(ps, np.maximum(q - band, 0), q + band, alpha=0.2, label="binomial band")
    ax.set(
        title="Dead-letter rate vs failure probability",
        xlabel="failure probability per attempt",
        ylabel="share dead-lettered",
    )
    ax.legend()
    return ax


def worker_timeline(result: RunResult, *, ax: Axes | None = None, max_attempts: int = 400) -> Axes:
    """Each worker's attempts as bars over time, coloured by outcome: the first
    ``max_attempts`` to start, and the title says so when that is only part of the run."""
    ax = axes(ax)
    ran = result.attempts.dropna(subset=["started", "ended"]).sort_values("started")
    attempts = ran.head(max_attempts)
    workers = sorted(attempts["worker"].dropna().unique())
    for row, worker in enumerate(workers):
        mine = attempts[attempts["worker"] == worker]
        spans: list[tuple[float, float]] = [
            (s, e - s) for s, e in zip(mine["started"], mine["ended"], strict=True)
        ]
        colours: list[Any] = [_OUTCOME_COLOURS.get(o, "black") for o in mine["outcome"]]
        ax.broken_barh(spans, (row - 0.4, 0.8), facecolors=colours)
    # character-wise on purpose: worker ids share a host-pid-pool prefix
    common = os.path.commonprefix([str(w) for w in workers]) if len(workers) > 1 else ""  # noqa: RUF071
    ax.set_yticks(range(len(workers)), [str(w)[len(common) :] or str(w) for w in workers])
    title = "Attempts per worker"
    if len(ran) > len(attempts):
        end = float(attempts["ended"].max()) if len(attempts) else 0.0
        title += f" (first {len(attempts)} of {len(ran)} attempts: up to {end:.3g} model s)"
    ax.set(title=title, xlabel="time (model s)", ylabel="worker")
    handles = [
        __import__("matplotlib.patches", fromlist=["Patch"]).Patch(color=c, label=o)
        for o, c in _OUTCOME_COLOURS.items()
        if o in set(attempts["outcome"])
    ]
    ax.legend(handles=handles, fontsize=8)
    return ax
