#!/usr/bin/env bash
# Set up .venv (if needed) and run the main job, `jobsim demo`, on the embedded backend.
# Extra arguments go to `jobsim demo`, e.g. `bash scripts/demo.sh --jobs 2000`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[sim,api]'  # api: so `jobsim serve` works next
exec .venv/bin/jobsim demo "$@"
