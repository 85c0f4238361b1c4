"""HTTP submit with workers running: ``python -m benchmarks.http_workers [--requests N]
[--repeat R] [--variants a,b] [--out FILE]``.

Starts a private ``redis-server``, then in each repeat ``jobsim serve`` in every variant of
:data:`jobsim.bench.http.VARIANTS` (no workers; 4 worker threads in the server's process;
4 in a worker process of their own) beside a bare FastAPI POST endpoint on the same uvicorn
settings, and posts ``/submit`` to each in blocks of 50 that go round the servers
(:func:`jobsim.bench.http.http_submit_rates`). Prints, per variant, submits/s, the ratio to
the bare endpoint and the server's CPU time per request (with its children), as median and
range over the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from jobsim.bench.http import VARIANTS, http_submit_rates
from jobsim.localredis import LocalRedis


def main(argv: list[str] | None = None) -> int:
    """Run the repeats and print the table; with ``--out``, also write every run as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_workers", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="POSTs per server per repeat")
    parser.add_argument("--repeat", type=int, default=3, help="repeats (3)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--out", type=Path, default=None, help="write the runs as JSON here")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    runs = []
    with LocalRedis() as server:
        for i in range(args.repeat):
            runs.append(http_submit_rates(server.url, args.requests, variants=variants))
            print(
                f"repeat {i + 1}: "
                + ", ".join(f"{v} {runs[-1][v + '_ratio']:.2f}x" for v in variants)
            )
    print(_table(runs, variants))
    if args.out is not None:
        settings = {**vars(args), "out": str(args.out)}
        meta = {"python": platform.python_version(), "cpus": os.cpu_count(), "args": settings}
        args.out.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
    return 0


def _span(runs: list[dict[str, Any]], key: str, fmt: str) -> str:
    values = [r[key] for r in runs]
    return (
        f"{format(statistics.median(values), fmt)} "
        f"({format(min(values), fmt)}..{format(max(values), fmt)})"
    )


def _table(runs: list[dict[str, Any]], variants: list[str]) -> str:
    lines = [
        "| server | submits/s | ratio to bare | CPU ms per request |",
        "|---|---:|---:|---:|",
    ]
    for name in variants:
        lines.append(
            f"| jobsim serve, {name} | {_span(runs, name + '_per_s', ',.0f')} | "
            f"{_span(runs, name + '_ratio', '.2f')} | {_span(runs, name + '_cpu_ms', '.3f')} |"
        )
    lines.append(
        f"| bare FastAPI | {_span(runs, 'bare_fastapi_per_s', ',.0f')} | 1 | "
        f"{_span(runs, 'bare_fastapi_cpu_ms', '.3f')} |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
