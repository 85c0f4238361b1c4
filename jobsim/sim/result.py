"""What one run produced: the plan, the frames, the checker's verdict and the summary."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from jobsim.sim.checker import Verdict
from jobsim.sim.faults import FaultPlan
from jobsim.sim.predict import Prediction, predictions
from jobsim.sim.setup import Setup
from jobsim.sim.summary import RunSummary, steady_state
from jobsim.sim.workload import Workload


@dataclass(frozen=True)
class RunResult:
    """Everything one run produced. Frames and summary are in model seconds from the run's
    start on every backend (only ``summary.wall_s`` is wall time)."""

    workload: Workload
    faults: FaultPlan
    setup: Setup
    jobs: pd.DataFrame
    attempts: pd.DataFrame
    verdict: Verdict
    summary: RunSummary
    events: tuple[tuple[float, str, str], ...]  # (model time, fault, detail) as applied

    @property
    def steady_jobs(self) -> pd.DataFrame:
        """The jobs after the warm-up, as the summary's statistics count them."""
        return steady_state(self.jobs)

    def theory_without_faults(self) -> tuple[Prediction, Prediction]:
        """The theory of the workload alone, at its own and at the measured rates, for a
        fault plan that touches too few jobs to matter (the summary's own theory steps
        aside for any fault)."""
        s = self.summary
        return predictions(self.workload, self.setup), predictions(
            self.workload,
            self.setup,
            mean_service_s=s.effective_service_s,
            arrival_rate_per_s=s.arrival_rate_per_s,
        )
