"""The simulator: seeded workloads and fault plans run on the real queue, with timing
capture, a checker, and the theory beside every measurement.

Needs the ``sim`` extra: ``pip install 'jobsim[sim]'``.
"""

try:
    import numpy  # noqa: F401
    import pandas  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the simulator needs numpy and pandas: pip install 'jobsim[sim]'") from exc

from jobsim.sim import job as _job  # noqa: F401  (registers the ``sim`` task)
from jobsim.sim.checker import Verdict, check
from jobsim.sim.faults import Cancel, FaultPlan, Outage, Pause, Restart, Spike
from jobsim.sim.predict import Prediction
from jobsim.sim.result import RunResult
from jobsim.sim.runner import run
from jobsim.sim.setup import Setup
from jobsim.sim.summary import RunSummary, flatten
from jobsim.sim.sweep import sweep
from jobsim.sim.workload import (
    AllAtOnce,
    Bimodal,
    Bursty,
    Constant,
    Exponential,
    Fixed,
    Lognormal,
    Poisson,
    Replay,
    Workload,
)

__all__ = [
    "AllAtOnce",
    "Bimodal",
    "Bursty",
    "Cancel",
    "Constant",
    "Exponential",
    "FaultPlan",
    "Fixed",
    "Lognormal",
    "Outage",
    "Pause",
    "Poisson",
    "Prediction",
    "Replay",
    "Restart",
    "RunResult",
    "RunSummary",
    "Setup",
    "Spike",
    "Verdict",
    "Workload",
    "check",
    "flatten",
    "run",
    "sweep",
]
