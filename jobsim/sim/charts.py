"""Charts for the notebooks' experiments, beside :mod:`jobsim.sim.plots` (charts of one
run). Each has a title, labelled axes with units, and the theory drawn beside the
measurement where a formula applies.

Every function takes an optional matplotlib ``Axes`` and returns the one it drew on.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from jobsim import theory
from jobsim.models import JobStatus
from jobsim.sim.plots import axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from jobsim.sim.result import RunResult

STATUS_COLOURS = {
    JobStatus.QUEUED.value: "tab:blue",
    JobStatus.PROCESSING.value: "tab:orange",
    JobStatus.RETRYING.value: "tab:purple",
    JobStatus.COMPLETED.value: "tab:green",
    JobStatus.FAILED.value: "tab:red",
}


def status_counts(samples: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Jobs in each status over time, stacked (from ``experiments.sample_statuses``)."""
    ax = axes(ax)
    statuses = list(STATUS_COLOURS)
    ax.stackplot(
        samples["t_s"],
        *(samples[s] for s in statuses),
        labels=statuses,
        colors=[STATUS_COLOURS[s] for s in statuses],
        alpha=0.85,
    )
    ax.set(title="Jobs by status over time", xlabel="time (wall s)", ylabel="jobs")
    ax.legend(loc="center right", fontsize=8)
    return ax


def erlang_c_wait_per_service(c: int, rho: float) -> float:
    """M/M/c mean wait in units of the mean service time: ``C(c, c*rho) / (c * (1 - rho))``;
    ``inf`` at ``rho >= 1`` (the queue grows without bound)."""
    return theory.mmc(c * rho, 1.0, c).wq


def wait_vs_utilisation(
    frame: pd.DataFrame, *, log: bool = False, top: float | None = None, ax: Axes | None = None
) -> Axes:
    """Measured mean waits on the Erlang C curves, from
    :func:`~jobsim.sim.experiments.utilisation_sweep`: nominal utilisation across, the wait
    in units of the mean service time up (so every worker count shares one chart), with the
    95% t-interval of the replications as error bars where there are several.

    Args:
        log: a logarithmic wait axis (shows the small waits).
        top: upper limit of the wait axis (default: fit the points).
    """
    ax = axes(ax)
    rhos = np.linspace(0.02, 0.985, 200)
    for i, (c, group) in enumerate(frame.groupby("workers")):
        colour = f"C{i}"
        n = int(str(c))
        ax.plot(rhos, [erlang_c_wait_per_service(n, r) for r in rhos], color=colour,
                label=f"Erlang C, c={n}")  # fmt: skip
        errors = group["wait_half_width_s"] / group["mean_service_s"]
        ax.errorbar(group["utilisation"], group["wait_per_service"],
                    yerr=errors.where(np.isfinite(errors), 0.0), fmt="o", color=colour,
                    markeredgecolor="black", capsize=3,
                    label=f"measured, c={n} (95% CI)")  # fmt: skip
    if log:
        ax.set_yscale("log")
    ceiling = top or max(2.0, 1.5 * float(frame["wait_per_service"].max()))
    ax.set_ylim(1e-3 if log else 0.0, ceiling)
    ax.set_xlim(0, 1.05)
    ax.axvline(1.0, color="gray", linestyle=":")
    ax.set(
        title="Mean wait vs utilisation: the hockey stick",
        xlabel=r"utilisation $\rho = \lambda / (c\mu)$ (nominal)",
        ylabel="mean wait / mean service time (ratio)",
    )
    ax.legend(fontsize=8, ncol=2)
    return ax


def staffing(
    lam: float,
    mu: float,
    *,
    max_p_wait: float,
    workers: Sequence[int],
    ax: Axes | None = None,
) -> Axes:
    """Erlang C probability of waiting for each worker count, against a target, with the
    smallest count meeting it (:func:`jobsim.theory.staffing`) highlighted."""
    ax = axes(ax)
    a = lam / mu
    stable = [c for c in workers if c > a]
    chosen = theory.staffing(lam, mu, max_p_wait=max_p_wait)
    colours = ["tab:green" if c == chosen else "tab:blue" for c in stable]
    ax.bar(stable, [theory.erlang_c(c, a) for c in stable], color=colours)
    ax.axhline(
        max_p_wait, color="tab:red", linestyle="--", label=f"target P(wait) = {max_p_wait:g}"
    )
    ax.set(
        title=f"Staffing for offered load a = {a:g} erlangs (smallest c = {chosen})",
        xlabel="workers c",
        ylabel="P(wait > 0), Erlang C (probability)",
        xticks=stable,
    )
    ax.legend()
    return ax


def attempts_vs_failure(frame: pd.DataFrame, *, max_retries: int, ax: Axes | None = None) -> Axes:
    """Attempts per job against the failure probability, from a sweep over
    ``fail_probability``, beside ``E[A] = (1 - p^(r+1)) / (1 - p)`` and its 4-SE band."""
    ax = axes(ax)
    ax.plot(frame["fail_probability"], frame["attempts_per_job"], "o", label="measured")
    ps = np.linspace(0, float(frame["fail_probability"].max()), 100)
    mean = np.array([theory.expected_attempts(float(p), max_retries) for p in ps])
    n = round(float(frame["submitted"].mean()))
    sd = np.sqrt([theory.attempts_variance(float(p), max_retries) for p in ps])
    band = np.array([theory.mean_band(float(s), n) for s in sd])
    ax.plot(ps, mean, "--", color="black", label=f"E[A], r={max_retries}")
    ax.fill_between(ps, mean - band, mean + band, alpha=0.2, label=f"±4 SE, n={n}")
    ax.set(
        title="Attempts per job vs failure probability",
        xlabel="failure probability per attempt p",
        ylabel="attempts per job (mean)",
    )
    ax.legend()
    return ax


def utilisation_vs_failure(
    utilisation: float,
    *,
    retries: Sequence[int | None] = (0, 1, 3, None),
    measured: pd.DataFrame | None = None,
    ax: Axes | None = None,
) -> Axes:
    """The stability cliff: retries multiply the load, ``rho_eff = rho * E[A]``, and the queue
    is unstable once that reaches 1. ``measured`` (optional) has columns
    ``fail_probability`` and ``measured_utilisation``."""
    ax = axes(ax)
    ps = np.linspace(0, 0.6, 200)
    for r in retries:
        label = "unlimited retries" if r is None else f"r = {r}"
        ax.plot(ps, [utilisation * theory.expected_attempts(float(p), r) for p in ps], label=label)
    if measured is not None:
        ax.plot(measured["fail_probability"], measured["measured_utilisation"], "o",
                color="black", label="measured")  # fmt: skip
    ax.axhline(1.0, color="tab:red", linestyle="--", label=r"$\rho$ = 1: unstable above")
    ax.set(
        title=f"Retries raise the load ($\\rho$ = {utilisation:g} without failures)",
        xlabel="failure probability per attempt p",
        ylabel=r"effective utilisation $\rho \cdot E[A]$ (ratio)",
    )
    ax.legend(fontsize=8)
    return ax


def in_system_over_time(results: Mapping[str, RunResult], *, ax: Axes | None = None) -> Axes:
    """Jobs in the system (submitted, not finished) over model time, one line per run."""
    ax = axes(ax)
    for label, result in results.items():
        jobs = result.jobs
        times = np.concatenate([jobs["submitted"], jobs["finished"].dropna()])
        steps = np.concatenate([np.ones(len(jobs)), -np.ones(int(jobs["finished"].notna().sum()))])
        order = np.argsort(times, kind="stable")
        ax.step(times[order], np.cumsum(steps[order]), where="post", label=label)
    ax.set(title="Jobs in the system over time", xlabel="time (model s)", ylabel="jobs in system")
    ax.legend(fontsize=8)
    return ax


def retry_waves(
    starts: Mapping[str, pd.Series | np.ndarray],
    *,
    bucket_s: float,
    horizon_s: float | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Retries started per time bucket, one step line per policy: synchronized waves
    without jitter, a flattened spread with it."""
    ax = axes(ax)
    values = {k: np.asarray(v, dtype=float) for k, v in starts.items()}
    top = horizon_s or max((float(v.max()) for v in values.values() if v.size), default=1.0)
    edges = np.arange(0.0, top + bucket_s, bucket_s)
    for label, times in values.items():
        counts, _ = np.histogram(times, edges)
        ax.step(edges[:-1], counts, where="post", label=f"{label} (peak {counts.max()})")
    ax.set(
        title=f"Retries per {bucket_s * 1000:g} ms after a shared outage",
        xlabel="time since the outage began (wall s)",
        ylabel=f"retries started per {bucket_s * 1000:g} ms",
    )
    ax.legend(fontsize=8)
    return ax


def load_over_time(
    loads: Mapping[str, pd.DataFrame],
    *,
    outage: tuple[float, float],
    expected: Mapping[str, float] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Load multiplier over time (attempts per new request), one line per strategy, from
    :func:`jobsim.sim.budget.load`, with each strategy's expected multiplier during the
    outage dashed."""
    ax = axes(ax)
    ax.axvspan(*outage, color="tab:red", alpha=0.1, label="outage")
    for i, (label, frame) in enumerate(loads.items()):
        ax.step(frame["t"], frame["multiplier"], where="post", color=f"C{i}", label=label)
        if expected and label in expected:
            ax.hlines(expected[label], *outage, colors=f"C{i}", linestyles="--")
    ax.set(
        title="Load on the dependency during a sustained failure",
        xlabel="time (s)",
        ylabel="attempts per new request (x normal load)",
    )
    ax.legend(fontsize=8)
    return ax


def recovery_vs_lease(frame: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """How long a job dead with its worker waited, against the lease length (columns
    ``lease_s`` and ``recovery_s``, death to next start, and optionally
    ``given_back_s``, death to give-back, model seconds, from
    :func:`~jobsim.sim.experiments.recovery_times`), beside the band [2/3 L, L] that
    heartbeats every L/3 leave for the give-back."""
    ax = axes(ax)
    if "given_back_s" in frame:
        ax.plot(frame["lease_s"], frame["given_back_s"], "o", alpha=0.7,
                label="given back to the queue")  # fmt: skip
    ax.plot(frame["lease_s"], frame["recovery_s"], "x", alpha=0.7,
            label="next attempt started")  # fmt: skip
    top = float(frame["lease_s"].max()) * 1.1
    leases = np.linspace(0, top, 50)
    ax.fill_between(leases, 2 * leases / 3, leases, alpha=0.2, label="theory: 2L/3 … L")
    ax.set(
        title="Recovery after a worker dies vs lease length",
        xlabel="lease length L (model s)",
        ylabel="time since the worker died (model s)",
    )
    ax.legend()
    return ax


def class_waits_vs_utilisation(
    frame: pd.DataFrame, *, workers: int, shares: Sequence[float], ax: Axes | None = None
) -> Axes:
    """Mean wait of each priority class against utilisation (columns ``utilisation``,
    ``priority``, ``wait_s``, model s with mean service 1), beside the non-preemptive
    priority formula for ``shares`` of the load, highest class first."""
    ax = axes(ax)
    rhos = np.linspace(0.3, 0.97, 150)
    total = float(sum(shares))
    curves = np.array(
        [theory.priority_waits([rho * workers * s / total for s in shares], 1.0, workers)
         for rho in rhos]
    )  # fmt: skip
    priorities = sorted(frame["priority"].unique(), reverse=True)
    for k, priority in enumerate(priorities):
        ax.plot(rhos, curves[:, k], color=f"C{k}", label=f"formula, priority {priority}")
        mine = frame[frame["priority"] == priority]
        ax.plot(mine["utilisation"], mine["wait_s"], "o", color=f"C{k}",
                markeredgecolor="black", label=f"measured, priority {priority}")  # fmt: skip
    ax.set_yscale("log")
    ax.set(
        title=f"Waits by priority class, M/M/{workers} non-preemptive",
        xlabel=r"utilisation $\rho$ (nominal)",
        ylabel="mean wait (model s, mean service 1 s)",
    )
    ax.legend(fontsize=8)
    return ax


def wait_by_arrival(
    results: Mapping[str, RunResult], *, priority: int, ax: Axes | None = None
) -> Axes:
    """Each job's wait against its arrival time, for the jobs of one ``priority``, one
    marker per run: starvation shows as tall bursts of waiting during busy spells."""
    ax = axes(ax)
    for i, (label, result) in enumerate(results.items()):
        jobs = result.jobs[result.jobs["priority"] == priority]
        ax.plot(jobs["submitted"], jobs["wait_s"], "o", markersize=4,
                color=f"C{i}", alpha=0.8, label=label)  # fmt: skip
    ax.set(
        title=f"Waits of priority-{priority} jobs by arrival time",
        xlabel="arrival time (model s)",
        ylabel="wait before first start (model s)",
    )
    ax.legend(fontsize=8)
    return ax


def grouped_bars(
    frame: pd.DataFrame,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    ax: Axes | None = None,
) -> Axes:
    """One group of bars per row of ``frame`` (its index labels the groups), one bar per
    column: e.g. lost / duplicated / redelivered per scenario."""
    ax = axes(ax)
    groups = np.arange(len(frame))
    width = 0.8 / max(len(frame.columns), 1)
    for i, column in enumerate(frame.columns):
        values = frame[column].to_numpy(dtype=float)
        bars = ax.bar(groups + (i - (len(frame.columns) - 1) / 2) * width, values, width,
                      label=str(column))  # fmt: skip
        ax.bar_label(bars, fmt=_bar_format(values), fontsize=8)
    ax.set_xticks(groups, [textwrap.fill(str(x), 14) for x in frame.index])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=8)
    return ax


def _bar_format(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    whole = finite.size == 0 or bool(np.all(finite == np.round(finite)))
    return "%d" if whole else "%.2f"


def give_back_vs_lease(
    sweep: pd.DataFrame, *, measured: Mapping[str, pd.DataFrame] | None = None,
    ax: Axes | None = None,
) -> Axes:  # fmt: skip
    """Death to give-back against the lease length, model seconds: the twin's mean per lease
    with its 95% interval (rows of :func:`~jobsim.sim.recovery.recovery_sweep`), the formula
    (:func:`jobsim.theory.lease_give_back_s`, dashed), the band [2L/3, L] that heartbeats
    every L/3 leave before the deadline, and optionally other runs' single give-backs
    (``measured``: label -> frame with columns ``lease_s`` and ``given_back_s``)."""
    ax = axes(ax)
    leases = sweep["lease_s"].to_numpy(dtype=float)
    means = np.array([i.mean for i in sweep["given_back"]])
    widths = np.array([i.half_width for i in sweep["given_back"]])
    top = float(leases.max()) * 1.1
    grid = np.linspace(0, top, 50)
    ax.fill_between(grid, 2 * grid / 3, grid, alpha=0.15, label="lease rules: 2L/3 … L")
    ax.plot(leases, sweep["theory_s"], "--", color="black", label="formula (mean)")
    ax.errorbar(leases, means, yerr=widths, fmt="o", capsize=4, color="tab:blue",
                label="twin: mean, 95% CI over runs")  # fmt: skip
    for k, (label, frame) in enumerate((measured or {}).items()):
        ax.plot(frame["lease_s"], frame["given_back_s"], "x", alpha=0.7, color=f"C{k + 1}",
                label=label)  # fmt: skip
    ax.set(
        title="A dead worker's job given back to the queue, vs lease length",
        xlabel="lease length L (model s)",
        ylabel="death to give-back (model s)",
    )
    ax.legend(fontsize=8)
    return ax
