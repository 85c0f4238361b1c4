"""Run every notebook here under nbval, the way CI does.

Loaded when pytest collects this directory (``pytest`` from the repository root, or
``pytest notebooks``), it turns on ``--nbval-lax`` (only cells marked
``# NBVAL_CHECK_OUTPUT`` are compared; every cell must run without error), the sanitizer
``sanitize.cfg``, and a kernel of the Python running pytest, unless the command line says
otherwise. The Redis-faults notebook needs a real ``redis-server``: without one it is
skipped, unless ``JOBSIM_REQUIRE_REDIS=1`` (set by ``.ci/run``), which makes it fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobsim.localredis import redis_server_binary

HERE = Path(__file__).parent
NEEDS_REDIS_SERVER = {"07_redis_faults.ipynb"}


def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    if not (option.nbval or option.nbval_lax):
        option.nbval_lax = True
    # nbval refuses an option given under both its names, so leave the deprecated ones alone
    if option.nbval_sanitize_with is None and option.sanitize_with is None:
        option.nbval_sanitize_with = str(HERE / "sanitize.cfg")
    if not (option.nbval_kernel_name or option.current_env):
        option.nbval_current_env = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if redis_server_binary() is not None or os.environ.get("JOBSIM_REQUIRE_REDIS") == "1":
        return
    skip = pytest.mark.skip(reason="redis-server is not installed (the notebook skips too)")
    for item in items:
        if item.path.name in NEEDS_REDIS_SERVER:
            item.add_marker(skip)
