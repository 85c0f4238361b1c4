"""Benchmark entry point: ``python -m benchmarks.run [--quick] [--peers] [--out DIR]``.

The same as ``jobsim bench``; run from the repository root so the peer adapters in
``benchmarks/peers`` can be imported. Peers need ``pip install -e '.[peers]'``.
"""

from __future__ import annotations

import sys

from benchmarks.peers import installed
from jobsim.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]], peers=installed()))
