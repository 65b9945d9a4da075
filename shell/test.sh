#!/usr/bin/env bash
# Install (idempotent) and run the whole test suite on the CPU:  bash shell/test.sh [pytest args]
# Two pytest workers (pytest-xdist), a test file per worker at a time (module fixtures are made once): many tests
# wait on subprocesses, servers and real-time streams, so two workers halve the wall time on 2 cores.
# HOLMESVAU_TEST_WORKERS=0 runs them in this one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash shell/install.sh
workers=${HOLMESVAU_TEST_WORKERS:-2}
if [ "$workers" = 0 ]; then
    exec "${PYTHON:-python3}" -m pytest -q "$@"
fi
exec "${PYTHON:-python3}" -m pytest -q -n "$workers" --dist loadfile "$@"
