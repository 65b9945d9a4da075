#!/bin/sh
# LoRA fine-tuning of InternVL2-2B on HIVAU-70k (the HolmesVAU-2B recipe).
#
#   sh shell/internvl2_2b_finetune_lora.sh                               # all GPUs of this machine
#   GPUS=2 PER_DEVICE_BATCH_SIZE=2 sh shell/internvl2_2b_finetune_lora.sh
#   MODEL=path/to/InternVL2-2B META=my_meta.json OUTPUT_DIR=work_dirs/mine sh shell/internvl2_2b_finetune_lora.sh
#   RESUME=1 sh shell/internvl2_2b_finetune_lora.sh                      # continue from the newest complete checkpoint
#   DRY_RUN=1 sh shell/internvl2_2b_finetune_lora.sh                     # print the resolved command, run nothing
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 sh shell/internvl2_2b_finetune_lora.sh   # multi-node
#
# Environment (defaults): GPUS (all visible; 0 = CPU, one process, no DeepSpeed), PER_DEVICE_BATCH_SIZE (2),
# BATCH_SIZE (512, the global batch: accumulation = BATCH_SIZE / (PER_DEVICE_BATCH_SIZE x GPUS x NNODES)),
# MODEL (OpenGVLab/InternVL2-2B: hub id or folder, original or converted), META (shell/data/hivau70k_meta.json),
# OUTPUT_DIR (work_dirs/internvl2_2b_finetune_lora), MAX_STEPS (unset: one epoch), ZERO_STAGE (1; 2, 3,
# 2_offload, 3_offload, or 0 for plain DDP), SAVE_STEPS (200), SAVE_TOTAL_LIMIT (3), NNODES (1), NODE_RANK (0),
# MASTER_ADDR (127.0.0.1), MASTER_PORT (29500), RESUME (0), DRY_RUN (0), PYTHON (python).
# Extra arguments are passed to `python -m internvl_chat.train` (e.g. --video_frames 8 --learning_rate 4e-5).
# RESUME=1 starts from the newest checkpoint-N marked complete; with none it stops with an error (exit 1). Resuming
# unpickles the checkpoint's optimizer / RNG / DeepSpeed files: resume only checkpoints you wrote yourself.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}
if [ -z "${GPUS:-}" ]; then
  GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
fi
PER_DEVICE_BATCH_SIZE=${PER_DEVICE_BATCH_SIZE:-2}
BATCH_SIZE=${BATCH_SIZE:-512}
MODEL=${MODEL:-OpenGVLab/InternVL2-2B}
META=${META:-$REPO/shell/data/hivau70k_meta.json}
OUTPUT_DIR=${OUTPUT_DIR:-work_dirs/internvl2_2b_finetune_lora}
ZERO_STAGE=${ZERO_STAGE:-1}
SAVE_STEPS=${SAVE_STEPS:-200}
SAVE_TOTAL_LIMIT=${SAVE_TOTAL_LIMIT:-3}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}

WORLD=$((GPUS > 0 ? GPUS * NNODES : 1))
GRADIENT_ACC=$((BATCH_SIZE / (PER_DEVICE_BATCH_SIZE * WORLD)))
[ "$GRADIENT_ACC" -ge 1 ] || GRADIENT_ACC=1

set -- --model_name_or_path "$MODEL" --meta "$META" --output_dir "$OUTPUT_DIR" \
  --per_device_train_batch_size "$PER_DEVICE_BATCH_SIZE" --gradient_accumulation_steps "$GRADIENT_ACC" \
  --save_steps "$SAVE_STEPS" --save_total_limit "$SAVE_TOTAL_LIMIT" "$@"
if [ -n "${MAX_STEPS:-}" ]; then set -- "$@" --max_steps "$MAX_STEPS"; fi
if [ "${RESUME:-0}" = "1" ]; then set -- "$@" --resume; fi

if [ "$GPUS" -gt 0 ]; then
  if [ "$ZERO_STAGE" != "0" ]; then
    DS_CONFIG=$REPO/internvl_chat/zero_stage${ZERO_STAGE}_config.json
    [ -f "$DS_CONFIG" ] || { echo "unknown ZERO_STAGE=$ZERO_STAGE (no $DS_CONFIG)" >&2; exit 2; }
    set -- "$@" --deepspeed "$DS_CONFIG"
  fi
  set -- torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR" \
    --master_port "$MASTER_PORT" --nproc_per_node "$GPUS" -m internvl_chat.train "$@"
else
  # no GPU: one CPU process, no DeepSpeed, no dataloader workers — a smoke test anyone can run
  set -- "$PYTHON" -m internvl_chat.train "$@" --dataloader_num_workers 0
fi

echo "GPUS=$GPUS NNODES=$NNODES PER_DEVICE_BATCH_SIZE=$PER_DEVICE_BATCH_SIZE BATCH_SIZE=$BATCH_SIZE GRADIENT_ACC=$GRADIENT_ACC ZERO_STAGE=$ZERO_STAGE"
for a in "$@"; do
  case $a in *[[:space:]]*|"") printf "'%s' " "$a" ;; *) printf '%s ' "$a" ;; esac
done
echo
if [ "${DRY_RUN:-0}" = "1" ]; then exit 0; fi

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUTPUT_DIR"
exec "$@"
