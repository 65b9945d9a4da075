"""Batch prediction with HolmesVAU over test instructions (resumable), and dense anomaly-score dumps.

    # every row of the test set (clip / event / video); ATS for long videos, uniform otherwise
    python tools/predict.py --annotations HIVAU-70k/instruction/merge_instruction_test_final.jsonl \
        --video-root HIVAU-70k/videos --model ppxin321/HolmesVAU-2B --output preds.jsonl
    # rerun the same command after a crash or kill: it resumes; --retry-failed also redoes failed rows

    # questions are answered in batches (--batch-size, default 16 on a GPU, 4 on the CPU), grouped by video
    python tools/predict.py --annotations ... --video-root ... --output preds.jsonl --batch-size 32

    # scale out: one process per GPU (multi-node: the usual torchrun --nnodes/--node-rank/--rdzv-* flags;
    # OUTPUT must be on a file system all nodes share). Ranks take whole videos (balanced by size); rank r writes
    # preds.jsonl.rank{r}; when all ranks are done rank 0 merges them into preds.jsonl (gloo barrier).
    torchrun --nproc_per_node 8 tools/predict.py --annotations ... --video-root ... --output preds.jsonl

    # ranks started some other way (RANK / WORLD_SIZE set, no MASTER_ADDR: e.g. a job array): merge afterwards
    RANK=0 WORLD_SIZE=2 python tools/predict.py ... --output preds.jsonl   # and RANK=1 ...
    python tools/predict.py --merge --world-size 2 --annotations ... --output preds.jsonl

    # dense anomaly scores only (for `tools/evaluate.py detection`; no text generation): one <video>.npz each
    python tools/predict.py --annotations ... --video-root ... --scores-only --scores-dir scores/ [--levels video]
    # or both at once: add --scores-dir scores/ to a prediction run (scores of the video-level rows' videos)

Output rows: {"id", "type", "task", "video", "prediction", "frame_indices", "sampling", "status", "error"}; bad or
missing videos are recorded as status "failed" with the reason. Exit status 1 when every row failed.
"""

import sys

from holmesvau.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
