#!/usr/bin/env bash
# Every GPU figure of the README in one run (one H200 lease): batched throughput, live latency, model load time,
# reproduction rate, scorer memory. Real InternVL2-2B shapes with random weights; no model hub needed.
#
#   bash bench/gpu_checks.sh [OUT_DIR]          # logs and one JSON line per bench in OUT_DIR (default gpu_out/)
#
# Each bench runs under its own time limit so one slow bench cannot eat the others' time.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_out}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
run() {  # run NAME SECONDS CMD...
    local name=$1 secs=$2; shift 2
    echo "=== $name (limit ${secs}s): $*"
    local t0=$SECONDS
    timeout "$secs" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "--- $name rc=$rc in $((SECONDS - t0))s; last line:"
    tail -n 1 "$OUT/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
run throughput 240 $PY bench/throughput.py --device cuda --full-size
run watch_latency 150 $PY bench/watch_latency.py --device cuda --full-size
run load_time 120 $PY bench/load_time.py --device cuda
run reproduce_rate 90 $PY bench/reproduce_rate.py --full-size --device cuda
run scorer_memory 60 $PY bench/scorer_memory.py --device cuda
