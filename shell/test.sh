#!/usr/bin/env bash
# Install (idempotent) and run the whole test suite on the CPU:  bash shell/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash shell/install.sh
exec "${PYTHON:-python3}" -m pytest -q "$@"
