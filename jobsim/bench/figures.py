"""Figures a CI job can gate on: each measured ``repeats`` times (min, median, max), normalised
to the Redis round-trip rate measured in the same run, and compared with a baseline run.

A throughput normalised is ``rate / ping rate`` (jobs per round trip: a slower machine slows
both); a latency normalised is ``ms * ping rate / 1000`` (round trips' worth of time). Figures
that are already ratios or sizes (``x``, ``B``) are their own normalised value.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FORMAT = 2
"""Version of the JSON layout ``jobsim bench --json-out`` writes."""
REFERENCE = "ping_per_s"
"""The figure every other one is normalised to: PING round trips per second."""


class Figures:
    """Collects figures: ``name -> {"min", "median", "max", "unit", "better", "runs"}``.

    Example:
        >>> fig = Figures(repeats=3)
        >>> fig.measure("answer_per_s", lambda: 42.0)
        42.0
        >>> fig.figures["answer_per_s"]["max"]
        42.0
    """

    def __init__(self, repeats: int) -> None:
        self.repeats = repeats
        self.figures: dict[str, dict[str, Any]] = {}

    def measure(self, name: str, fn: Callable[[], float], unit: str = "/s") -> float:
        """Run ``fn`` ``repeats`` times; record and return the median."""
        return self.record(name, [fn() for _ in range(self.repeats)], unit=unit)

    def rate(self, name: str, n: int, fn: Callable[[], Any]) -> float:
        """``n / seconds`` of ``fn``, ``repeats`` times; record and return the median."""

        def once() -> float:
            started = time.perf_counter()
            fn()
            return n / (time.perf_counter() - started)

        return self.measure(name, once)

    def record(
        self, name: str, runs: list[float], *, unit: str = "/s", better: str = "higher"
    ) -> float:
        """Record measured ``runs``; return their median."""
        median = statistics.median(runs)
        self.figures[name] = {
            "min": min(runs),
            "median": median,
            "max": max(runs),
            "unit": unit,
            "better": better,
            "runs": runs,
        }
        return median


def normalised(figure: dict[str, Any], reference: float) -> float:
    """A figure's median in reference units (see the module docstring)."""
    if figure["unit"] == "/s":
        return float(figure["median"]) / reference
    if figure["unit"] == "ms":
        return float(figure["median"]) * reference / 1000
    return float(figure["median"])


@dataclass(frozen=True)
class Change:
    """One figure, before and after."""

    name: str
    unit: str
    before: float
    after: float
    before_norm: float
    after_norm: float
    better: str

    @property
    def change(self) -> float:
        """Relative change of the normalised figure, positive when it got better."""
        if self.before_norm == 0:
            return 0.0
        delta = (self.after_norm - self.before_norm) / self.before_norm
        return delta if self.better == "higher" else -delta


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Every figure both runs measured (the reference excepted), before and after.

    Args:
        before, after: results of :func:`jobsim.bench.run_bench` (or their JSON).

    Raises:
        ValueError: a result without figures (a file from an older ``jobsim bench``).
    """
    changes = []
    old, new = _figures(before), _figures(after)
    ref_old, ref_new = old[REFERENCE]["median"], new[REFERENCE]["median"]
    for name in sorted(set(old) & set(new) - {REFERENCE}):
        a, b = old[name], new[name]
        changes.append(
            Change(
                name,
                b["unit"],
                a["median"],
                b["median"],
                normalised(a, ref_old),
                normalised(b, ref_new),
                b.get("better", "higher"),
            )
        )
    return changes


def _figures(results: dict[str, Any]) -> dict[str, Any]:
    try:
        figures: dict[str, Any] = results["jobsim"]["figures"]
        figures[REFERENCE]["median"]
    except (KeyError, TypeError):
        raise ValueError("no figures in these results: rerun jobsim bench to write them") from None
    return figures


def regressions(changes: list[Change], max_regression_pct: float) -> list[Change]:
    """The changes whose normalised figure got worse by more than ``max_regression_pct``."""
    return [c for c in changes if c.change < -max_regression_pct / 100]


def table(changes: list[Change], max_regression_pct: float) -> str:
    """A Markdown table: each figure before and after, absolute and normalised, and a verdict."""
    lines = [
        "| figure | before | after | before (norm.) | after (norm.) | change | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    bad = {c.name for c in regressions(changes, max_regression_pct)}
    for c in changes:
        verdict = f"REGRESSION (> {max_regression_pct:g}%)" if c.name in bad else "ok"
        lines.append(
            f"| {c.name} | {_num(c.before)} {c.unit} | {_num(c.after)} {c.unit} "
            f"| {c.before_norm:.4g} | {c.after_norm:.4g} | {c.change:+.1%} | {verdict} |"
        )
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
