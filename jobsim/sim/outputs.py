"""What the simulator's commands print and write: the measured-beside-theory table, the
mean wait per priority, and the CSV frames, JSON summary and charts of a run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from jobsim.sim.result import RunResult
from jobsim.sim.summary import WARM_UP_SHARE


def format_summary(result: RunResult, *, ignore_faults: bool = False) -> str:
    """A table of measured beside predicted, then the checker's verdict.

    Args:
        ignore_faults: show the theory of the workload alone, even though the fault plan
            breaks its assumptions (for a plan that touches only a few jobs).
    """
    s, w = result.summary, result.workload
    theory, at_measured = s.theory, s.theory_at_measured_service
    if ignore_faults:
        theory, at_measured = result.theory_without_faults()
    rows = [
        ("attempts per job", s.attempts_per_job, theory.attempts_per_job, None),
        ("dead-letter rate", s.dead_letter_rate, theory.dead_letter_rate, None),
        ("mean wait (s)", s.wait_s.mean, theory.wait_s, at_measured.wait_s),
        ("mean sojourn (s)", s.sojourn_s.mean, theory.sojourn_s, at_measured.sojourn_s),
        ("throughput (jobs/s)", s.throughput_per_s, w.arrival_rate_per_s, None),
        ("L, jobs in system (sampled)", s.littles_law.l_sampled, s.littles_law.lambda_w, None),
    ]
    lines = [f"{'':<28}{'measured':>11}{'theory':>11}{'theory*':>11}"]
    lines += [f"{name:<28}{_cell(m)}{_cell(t)}{_cell(a)}" for name, m, t, a in rows]
    if ignore_faults:
        lines.append("theory leaves out the injected faults (they touch a handful of jobs)")
    lines.append(
        f"theory: {theory.model or 'retry formulas only'} at the workload's rates; theory*: "
        f"at the measured arrival rate {s.arrival_rate_per_s:.3f}/s and service time "
        f"{s.service_s:.3f} s plus the queue's own {s.overhead_per_attempt_s:.4f} s per "
        "attempt; L's theory column is lambda x W (Little's law)"
    )
    if theory.caveat:
        lines.append(f"theory: {theory.caveat}")
    if at_measured.caveat and at_measured.caveat != theory.caveat:
        lines.append(f"theory*: {at_measured.caveat}")
    lines.append(
        f"p50/p95/p99 wait: {s.wait_s.p50:.3f} / {s.wait_s.p95:.3f} / "
        f"{s.wait_s.p99:.3f} s (model time; first {WARM_UP_SHARE:.0%} of jobs skipped as warm-up)"
    )
    v = result.verdict
    lines.append(
        f"checker: submitted {v.submitted}, completed {v.completed}, dead-lettered "
        f"{v.dead_lettered}, lost {v.lost}, unexpected {v.unexpected}, duplicates "
        f"{v.duplicates}, redelivered {v.redelivered} -> {'VALID' if v.valid else 'INVALID'}"
    )
    for at, kind, detail in result.events:
        lines.append(f"fault at {at:.2f} s: {kind}: {detail}")
    lines += [f"note: {w}" for w in s.warnings]
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>11}"
    return f"{value:>11.4g}"


def write_outputs(result: RunResult, out: Path) -> list[Path]:
    """CSV frames, the JSON summary and the charts (PNG) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jobsim.sim import plots

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "jobs.csv", out / "attempts.csv", out / "summary.json"]
    result.jobs.to_csv(paths[0], index=False)
    result.attempts.to_csv(paths[1], index=False)
    paths[2].write_text(summary_json(result))
    for name, draw in (
        ("throughput.png", plots.throughput_over_time),
        ("wait_vs_theory.png", plots.wait_vs_theory),
        ("attempts.png", plots.attempts_histogram),
        ("workers.png", plots.worker_timeline),
    ):
        figure = draw(result).get_figure(root=True)
        assert figure is not None
        figure.tight_layout()
        figure.savefig(out / name, dpi=110)
        plt.close(figure)
        paths.append(out / name)
    return paths


def summary_json(result: RunResult) -> str:
    """The run's summary as JSON (a figure that is not finite becomes ``null``)."""
    return json.dumps(_jsonable(result.summary.as_dict()), indent=2) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def priority_table(result: RunResult) -> str:
    """The steady-state mean wait of each priority class, highest first."""
    steady = result.steady_jobs
    means = steady.groupby("priority")["wait_s"].mean()
    cells = ", ".join(f"priority {p}: {w:.3f} s" for p, w in sorted(means.items(), reverse=True))
    return f"mean wait by priority (higher served first): {cells}"
