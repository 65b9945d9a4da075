"""`tools/predict.py`'s parser and `main(argv)` (the script's docstring lists the commands): batch prediction over
test instructions (resumable), rank shards and dense-score dumps. The work itself is holmesvau.predict."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
from pathlib import Path

from holmesvau.cli import (
    add_generation_options,
    add_model_options,
    add_sampling_options,
    batch_size,
    load_vau,
    non_negative_int,
    output_dir,
    output_file,
    positive_int,
    sampling_config,
)
from holmesvau.data.instructions import LEVELS, read_instructions_report
from holmesvau.distributed import barrier_then, default_device, dist_env, shard
from holmesvau.jsonl import done_ids
from holmesvau.output_guard import OutputLock, check_output_file, jsonl_rows_with
from holmesvau.predict import (
    drop_failed,
    dump_scores,
    merge_outputs,
    predict_rows,
    shard_by_video,
    shard_path,
)


def build_parser() -> argparse.ArgumentParser:
    about = (
        "Batch prediction with HolmesVAU over test instructions (resumable), and dense anomaly-score dumps."
    )
    p = argparse.ArgumentParser(description=about, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--annotations", type=Path, required=True,
        help="test instructions jsonl (id, type, task, video, prompt)")  # fmt: skip
    add("--video-root", type=Path, default=Path("."), help="folder the rows' `video` paths are relative to")
    add_model_options(p)
    add("--output", type=output_file, default=None,
        help="predictions jsonl (default preds.jsonl; scores-only: SCORES_DIR/scores_log.jsonl)")  # fmt: skip
    add("--scores-dir", type=output_dir, default=None, help="write <video>.npz dense anomaly scores here")
    add("--scores-only", action="store_true", help="only dump dense scores (needs --scores-dir)")
    add("--levels", default=None, help="comma-separated row levels to use (default: all; scores: video)")
    add("--limit", type=non_negative_int, default=None, help="only the first N rows (after --levels)")
    add_sampling_options(p)
    add_generation_options(p)
    add("--retry-failed", action="store_true", help="redo rows recorded as failed")
    add("--merge", action="store_true", help="only merge OUTPUT.rank* shards into OUTPUT")
    add("--world-size", type=positive_int, default=None, help="shards to merge (with --merge)")
    add("--quiet", action="store_true", help="no progress bar")
    add("--batch-size", type=batch_size, default=None,
        help="questions answered together (default 16 on a GPU, 4 on the CPU); 1 = one at a time")  # fmt: skip
    return p


def _guard(stack: contextlib.ExitStack, args, output: Path, world: int) -> None:
    """Check every output before any work (holmesvau.output_guard) and lock it for the run (`stack`): the whole
    output shared by the ranks of one job, each rank's shard its own."""
    ours = jsonl_rows_with("id", "status", "scores_file" if args.scores_only else "prediction")
    inputs = [args.annotations]
    paths = [output] + ([] if args.merge else [shard_path(output, r) for r in range(world) if world > 1])
    for p in paths:
        check_output_file(p, inputs, ours, what="predictions file" if not args.scores_only else "scores log")
    stack.enter_context(OutputLock(output, shared=world > 1 and not args.merge))
    if world > 1 and not args.merge:
        stack.enter_context(OutputLock(shard_path(output, dist_env().rank)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.scores_only and args.scores_dir is None:
        raise SystemExit("--scores-only needs --scores-dir")
    default_output = args.scores_dir / "scores_log.jsonl" if args.scores_only else Path("preds.jsonl")
    output = args.output or default_output
    try:
        env = dist_env()
        world = (args.world_size or int(os.environ.get("WORLD_SIZE", 1))) if args.merge else env.world_size
        with contextlib.ExitStack() as stack:
            _guard(stack, args, output, world)
            return _main(args, output, env, world)
    except (OSError, ValueError) as e:  # bad input or output: one line naming it, no traceback
        if getattr(e, "errno", None) == errno.ENOSPC:
            e = f"no space left on the device while writing {output}: free some space and rerun the same command "
            e += "(the rows already written are kept)"
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args, output: Path, env, world: int) -> int:
    rows, problems = read_instructions_report(args.annotations)  # OSError / ValueError: main's one-line error
    for p in problems[:20]:  # holmesvau.jsonl's policy: skipped, reported by line, counted; the run goes on
        print(f"skipped line {p}", file=sys.stderr)
    if len(problems) > 20:
        print(f"... and {len(problems) - 20} more skipped lines of {args.annotations}", file=sys.stderr)
    levels = tuple(args.levels.split(",")) if args.levels else (("video",) if args.scores_only else LEVELS)
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        raise SystemExit(f"--levels: unknown level(s) {bad} (expected {', '.join(LEVELS)})")
    rows = [r for r in rows if r.type in levels]
    if args.limit is not None:
        rows = rows[: args.limit]
    order = [r.id for r in rows] if not args.scores_only else sorted({r.video for r in rows})
    if args.merge:
        print(json.dumps(merge_outputs(output, world, order)))
        return 0

    rank = env.rank
    # by video: each video's probe, dense pass and decoding happen on one rank
    mine = (
        shard(order, rank, world) if args.scores_only else shard_by_video(rows, rank, world, args.video_root)
    )
    out = shard_path(output, rank) if world > 1 else output
    if args.retry_failed:
        for p in (output, out):
            drop_failed(p)
    # rows merged by an earlier distributed run count as done for this rank too
    merged = done_ids(output) if world > 1 else set()

    from holmesvau.ats.weights import ScorerError

    try:
        vau = load_vau(args, device=default_device(args.device, env))
    except ScorerError as e:  # CheckpointError is a ValueError: main reports it
        print(f"error: {e}", file=sys.stderr)
        return 2
    desc = f"rank {rank}/{world}" if world > 1 else ("scores" if args.scores_only else "predict")
    common = dict(progress=not args.quiet, desc=desc, skip_ids=merged)
    if args.scores_only:
        stats = dump_scores(vau, mine, args.video_root, args.scores_dir, out, args.dense_stride, **common)
    else:
        stats = predict_rows(
            vau, mine, args.video_root, out, sampling_config(args), max_new_tokens=args.max_new_tokens,
            scores_dir=args.scores_dir, batch_size=args.batch_size,
            refused=[(p.id, p.reason) for p in problems if p.id is not None and rank == 0], **common,
        )  # fmt: skip
    stats["skipped_lines"] = len(problems)
    print(json.dumps({"rank": rank, "world_size": world, "output": str(out), **stats}), file=sys.stderr)
    if env.can_barrier:
        barrier_then(env, lambda: print(json.dumps(merge_outputs(output, world, order))))
    elif world > 1 and rank == 0:
        print(f"rank shards written; when all ranks are done: python tools/predict.py --merge --world-size {world} "
              f"--annotations {args.annotations} --output {output}", file=sys.stderr)  # fmt: skip
    return 1 if stats["total"] and stats["failed"] == stats["total"] else 0  # every row failed: say so
