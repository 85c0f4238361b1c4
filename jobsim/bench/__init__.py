"""``jobsim bench``: measure jobsim, and installed peer queues, on a private redis-server.

:mod:`~jobsim.bench.plan` says what to measure (sizes and the user's queue settings),
:mod:`~jobsim.bench.measure` measures it, :mod:`~jobsim.bench.http` measures HTTP submit
beside a bare FastAPI endpoint, :mod:`~jobsim.bench.figures` normalises each figure to the
round-trip rate and compares runs (the CI gate), :mod:`~jobsim.bench.report` writes the tables.
"""

from jobsim.bench.figures import Change, compare, regressions, table
from jobsim.bench.measure import drain_rate, run_bench
from jobsim.bench.plan import BenchPlan, PeerAdapter, load_plan, parse_mix
from jobsim.bench.report import markdown, write_report

__all__ = [
    "BenchPlan", "Change", "PeerAdapter", "compare", "drain_rate", "load_plan", "markdown",
    "parse_mix", "regressions", "run_bench", "table", "write_report",
]  # fmt: skip
