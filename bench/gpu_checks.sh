#!/usr/bin/env bash
# Every GPU figure of docs/speed.md in one run (one GPU lease): batched answering throughput, live-mode latency,
# reproduction rate, model load time, scorer memory. Real InternVL2-2B shapes, random weights, no model hub.
#
#   bash bench/gpu_checks.sh [OUT_DIR]       # one log per bench in OUT_DIR (default gpu_out/); last line JSON
#   ONLY="decode_step throughput" bash bench/gpu_checks.sh     # just these benches (names as in the logs)
#
# Each bench runs under its own time limit, so one slow bench cannot eat the others' time. The CPU-only scorer
# memory run for 24 h of video (issue: under 4 GB on the CPU) runs beside them on spare cores.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_out}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
run() {  # run NAME SECONDS CMD...
    local name=$1 secs=$2
    shift 2
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
    echo "=== $name (limit ${secs}s): $*"
    local t0=$SECONDS
    timeout "$secs" "$@" >"$OUT/$name.log" 2>&1
    echo "--- $name rc=$? in $((SECONDS - t0))s; last lines:"
    tail -n 3 "$OUT/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, transformers, av; print('torch', torch.__version__, 'transformers', transformers.__version__, 'av', av.__version__)"
[ -z "${ONLY:-}" ] && (timeout "${SCORER_CPU_LIMIT:-520}" nice -n 19 $PY bench/scorer_memory.py --hours 24 --lengths "" --train "" --threads 8 \
    >"$OUT/scorer_memory_cpu24h.log" 2>&1; echo "rc=$?" >>"$OUT/scorer_memory_cpu24h.log") &
run decode_step 90 $PY bench/decode_step.py --device cuda --layers 24
run throughput 420 $PY bench/throughput.py --device cuda --full-size --max-new-tokens 96 --timing
run watch_latency 140 $PY bench/watch_latency.py --device cuda --full-size --latency-s 20 \
    --clip "${HOLMESVAU_SHARED:-../shared}/videos/robbery.mp4"
run reproduce_rate 75 $PY bench/reproduce_rate.py --full-size --device cuda --frames 12 --new-tokens 128
run scorer_memory_gpu 35 $PY bench/scorer_memory.py --device cuda --hours 1,8,24
run load_time 90 $PY bench/load_time.py --device cuda
wait
if [ -z "${ONLY:-}" ]; then
    echo "=== scorer_memory_cpu24h:"
    tail -n 4 "$OUT/scorer_memory_cpu24h.log"
fi
