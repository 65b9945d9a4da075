"""Extract dense InternViT CLS features (every 16th frame) of whole videos, one .npz per video, for scorer training.

    python tools/extract_features.py --video-root videos/ --list videos.txt --output feats/
    python tools/extract_features.py --video-root UCF_Crime/ \
        --annotations HIVAU-70k/raw_annotations/ucf_database_train.json --model ppxin321/HolmesVAU-2B --output feats/
    python tools/extract_features.py --video-root data/ \
        --annotations HIVAU-70k/instruction/merge_instruction_test_final.jsonl --output feats_test/
    torchrun --nproc_per_node 8 tools/extract_features.py --video-root UCF_Crime/ --annotations RAW_DB.json \
        --output feats/ --device cuda        # each rank a disjoint share, on cuda:$LOCAL_RANK

--list: one video path a line, relative to --video-root. --annotations: a raw database .json (names looked up by
name anywhere under --video-root) or an instruction .jsonl (the `video` paths of its video-level rows).
Output: FEATDIR/<name>.npz (features (T, D) float32, frame_indices (T,), fps, n_frames, stride); videos whose file
exists are skipped (rerun to resume); failures go to FEATDIR/failures.jsonl and do not stop the run. Prints one
JSON summary line per rank. Exit status: 0; 1 when every video of this rank failed; 2 for bad arguments (checked,
and the model loaded, before anything is written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video-root", default=".", help="folder the listed / annotated videos are under")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--list", help="text file: one video path a line (relative to --video-root)")
    src.add_argument("--annotations", help="raw annotation database .json or instruction .jsonl")
    ap.add_argument("--model", default=None, help="HolmesVAU / InternVL2 checkpoint (folder or hub id)")
    ap.add_argument("--output", required=True, help="feature folder FEATDIR")
    ap.add_argument("--stride", type=int, default=16, help="take every stride-th frame (default 16, as ATS)")
    ap.add_argument("--batch-size", type=int, default=16, help="frames per ViT forward")
    ap.add_argument(
        "--device", default=None, help="cpu | cuda (default: cuda when available); ranks use LOCAL_RANK"
    )
    ap.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16", "fp32", "bf16", "fp16"],
        help="default: bf16/fp16 GPU, fp32 CPU",
    )
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


class UsageError(Exception):
    """A bad argument, list or model: one line on stderr, exit status 2."""


def run(args: argparse.Namespace) -> int:
    from holmesvau.ats.features import (
        FAILURES_FILE,
        extract_to_dir,
        videos_from_annotations,
        videos_from_list,
    )
    from holmesvau.distributed import dist_env
    from holmesvau.output_guard import check_output_file, jsonl_rows_with

    if args.stride < 1 or args.batch_size < 1:
        raise UsageError("--stride and --batch-size must be >= 1")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UsageError(f"--output {args.output}: exists and is not a folder")
    try:  # the one file appended to: never an input, never a file of someone else's (OutputError: a ValueError)
        failures = os.path.join(args.output, FAILURES_FILE)
        check_output_file(failures, [args.list, args.annotations], jsonl_rows_with("video", "reason"))
        env = dist_env()
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        read = videos_from_list if args.list else videos_from_annotations
        videos = read(args.list or args.annotations, args.video_root)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the video list: {e}") from None
    if not videos:
        raise UsageError(f"{args.list or args.annotations}: names no videos")
    encode = load_encoder(args, env)
    report = extract_to_dir(
        videos,
        encode,
        args.output,
        stride=args.stride,
        batch_size=args.batch_size,
        rank=env.rank,
        world_size=env.world_size,
        progress=not args.no_progress,
    )
    summary = {**report.to_dict(), "videos_listed": len(videos), "output": str(args.output)}
    summary["failures"] = summary["failures"][:20]
    print(json.dumps(summary))
    return 1 if report.failed and not report.extracted and not report.skipped else 0  # every video failed


def load_encoder(args: argparse.Namespace, env):
    """The model's ViT as `pixel_values -> CLS features`; a model that does not load is a UsageError."""
    from holmesvau.distributed import default_device
    from holmesvau.model import DEFAULT_MODEL, CheckpointError, load_model, vit_encoder

    device = default_device(args.device, env)
    model = args.model or DEFAULT_MODEL
    try:
        return vit_encoder(load_model(model, device=device, dtype=args.dtype))
    except (CheckpointError, OSError, ValueError, RuntimeError) as e:
        text = " ".join(str(e).split())
        raise UsageError(text if str(model) in text else f"--model {model}: {text}") from None


if __name__ == "__main__":
    sys.exit(main())
