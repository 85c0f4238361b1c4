"""What the lab shows of one run: measured beside theory as a table, the checker's verdict
in one line, and the three charts (throughput, waits against Erlang C, attempts against the
retry law). :class:`jobsim.sim.lab.Lab` shows them live or as static output."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from jobsim import theory
from jobsim.sim import plots
from jobsim.sim.result import RunResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def summary_table(result: RunResult) -> pd.DataFrame:
    """Measured beside theory for one run: utilisation, waits, retries, the queue's own cost
    per attempt, and the checker.

    The ``theory`` column is the formula at the settings' nominal rates (blank where none
    applies); the real queue's cost per attempt is a measurement (0 on the virtual backend),
    never folded into the theory.
    """
    s = result.summary
    nominal = s.theory
    nan = math.nan
    scale = result.workload.time_scale

    def shown(value: float | None, absent: float = nan) -> float:
        return absent if value is None else value

    overhead = s.overhead_per_attempt_s
    cost = overhead * scale * 1000 if math.isfinite(overhead) else nan
    rows = [
        ("utilisation rho", s.measured_utilisation, shown(nominal.utilisation)),
        ("mean wait (model s)", s.wait_s.mean, shown(nominal.wait_s)),
        ("p95 wait (model s)", s.wait_s.p95, nan),
        ("attempts per job", s.attempts_per_job, shown(nominal.attempts_per_job, 1.0)),
        ("dead-letter rate", s.dead_letter_rate, shown(nominal.dead_letter_rate, 0.0)),
        ("dead-lettered", s.failed, nan),
        ("lost", s.lost, 0),
        ("duplicated (fenced)", s.duplicates, nan),
        ("redelivered", s.redelivered, nan),
        ("queue cost per attempt (wall ms)", cost, nan),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["metric", "measured", "theory"])
    return frame.set_index("metric")


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """The summary table as text: counts as integers, the rest to three decimals, blanks for
    what does not apply."""

    def cell(value: Any) -> str:
        if not isinstance(value, (int, float)) or math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else f"{value:.3f}"

    return table.apply(lambda column: column.map(cell))


def theory_note(result: RunResult) -> str:
    """Why the run has no wait formula beside it (``""`` when it has one), e.g. ``"no wait
    formula: unstable: rho = 1.39 >= 1, the queue grows without bound"``."""
    predicted = result.summary.theory
    return "" if predicted.applies else f"no wait formula: {predicted.reason}"


def verdict(result: RunResult) -> str:
    """The checker's verdict in one line: valid, lost, whether attempts match the law, and
    why no wait formula applies when none does (:func:`theory_note`)."""
    note = theory_note(result)
    return _checked(result) + (f"; {note}" if note else "")


def _checked(result: RunResult) -> str:
    s = result.summary
    p, r, n = result.workload.fail_probability, result.workload.max_retries, s.submitted
    band = theory.mean_band(math.sqrt(theory.attempts_variance(p, r)), n) + 0.02
    ok = abs(s.attempts_per_job - theory.expected_attempts(p, r)) <= band
    return (
        f"valid: {s.valid}, lost: {s.lost}, "
        f"attempts/job within ±{band:.3f} of {theory.expected_attempts(p, r):.3f}: "
        f"{'PASS' if ok else 'FAIL'}"
    )


def figure(result: RunResult) -> Figure:
    """Throughput over time, waits against Erlang C, attempts against the retry law."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4), layout="constrained")
    left, middle, right = fig.subplots(1, 3)
    plots.throughput_over_time(result, ax=left)
    plots.wait_vs_theory(result, ax=middle)
    plots.attempts_histogram(result, ax=right)
    return fig


def png(fig: Figure, *, dpi: int = 80) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
