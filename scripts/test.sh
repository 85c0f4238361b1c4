#!/usr/bin/env bash
# Set up .venv (if needed) and run lint, type checks and the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k priority`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check jobsim tests benchmarks
.venv/bin/ruff format --check jobsim tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
