"""Cut the annotated events and clips of HIVAU-70k out of the source videos (resumable, parallel).

    cd HIVAU-70k && python split_video.py          # every dataset and split whose source videos are present
    python HIVAU-70k/split_video.py --root HIVAU-70k --dataset ucf-crime --split test
    python HIVAU-70k/split_video.py --root HIVAU-70k --dataset xd-violence --split train --workers 8

Reads ROOT/instruction/merge_instruction_{split}_final.jsonl (the segments it names) and
ROOT/raw_annotations/{ucf,xd}_database_{split}.json (their times), takes sources from
ROOT/videos/{dataset}/videos/{split}/<name>.mp4 and writes ROOT/videos/{dataset}/{events,clips}/{split}/.
ROOT defaults to the folder of this script. Without --dataset / --split, every (dataset, split) with source videos
in place is processed, and those without are listed as skipped. Run it again after an interruption: complete
outputs are skipped; killing it (even with SIGKILL) stops its worker processes too. The summary (done / skipped /
failed with reasons) is printed, one JSON line per (dataset, split), and written to
ROOT/videos/{dataset}/split_video_{split}.json (or --summary). Exit status 1 when any segment failed, 2 when a
(dataset, split) could not be planned (e.g. its annotation file is missing).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from holmesvau.cli import positive_int
from holmesvau.data.download import FETCH_HINT
from holmesvau.data.layout import DATASETS, SPLITS, no_sources_message, plan_segments, scan_sources
from holmesvau.data.segments import METHODS, run_jobs
from holmesvau.files import atomic_write_json
from holmesvau.output_guard import check_output_file, json_object_with

HERE = Path(__file__).resolve().parent


def cut(args, dataset: str, split: str) -> int:
    """One (dataset, split): 0 ok, 1 some segment failed, 2 cannot be planned."""
    try:
        plan = plan_segments(args.root, dataset, split, args.instructions, args.all_annotated)
    except (FileNotFoundError, ValueError) as e:  # missing/malformed annotation or instruction file
        hint = f" ({FETCH_HINT.format(root=args.root)})" if isinstance(e, FileNotFoundError) else ""
        print(f"error: {dataset}/{split}: {e}{hint}", file=sys.stderr)
        return 2
    print(
        f"{dataset}/{split}: {len(plan.jobs)} segments to check/cut, {len(plan.problems)} that cannot be cut",
        file=sys.stderr,
    )
    summary, _ = run_jobs(plan.jobs, args.workers, args.method, progress=not args.no_progress)
    summary.failed += len(plan.problems)
    summary.failures = plan.problems + summary.failures
    out = Path(args.summary or Path(args.root) / "videos" / dataset / f"split_video_{split}.json")
    atomic_write_json(out, {"dataset": dataset, "split": split, **summary.to_json()})
    brief = {k: v for k, v in summary.to_json().items() if k != "failures"}
    for f in summary.failures[:20]:
        print(f"failed: {f['output']}: {f['reason']}", file=sys.stderr)
    if len(summary.failures) > 20:
        print(f"... {len(summary.failures) - 20} more failures in {out}", file=sys.stderr)
    print(json.dumps({"dataset": dataset, "split": split, **brief, "summary": str(out)}), flush=True)
    return 1 if summary.failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(HERE), help="the HIVAU-70k folder (default: this script's folder)")
    ap.add_argument("--dataset", choices=list(DATASETS), help="default: each dataset with source videos")
    ap.add_argument("--split", choices=list(SPLITS), help="default: each split with source videos")
    ap.add_argument(
        "--workers", type=positive_int, default=None, help="parallel cutting processes (default: CPU count)"
    )
    ap.add_argument("--instructions", help="instruction file naming the segments (default: the split's file)")
    ap.add_argument(
        "--all-annotated", action="store_true", help="cut every event and clip of the raw database"
    )
    ap.add_argument("--method", default="auto", choices=list(METHODS), help="auto may stream copy")
    ap.add_argument("--summary", help="where to write the JSON summary (one dataset and split only)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    if args.dataset and args.split:  # exactly what was asked, present or not (missing sources are reported)
        pairs = [(args.dataset, args.split)]
    else:
        scan = scan_sources(
            args.root, [args.dataset] if args.dataset else None, [args.split] if args.split else None
        )
        print(scan.describe(args.root), file=sys.stderr)
        if not scan.found:
            print(f"error: {no_sources_message(args.root)}", file=sys.stderr)
            return 2
        pairs = list(scan.found)
    if len(pairs) > 1 and (args.summary or args.instructions):
        print("error: --summary and --instructions need one --dataset and one --split", file=sys.stderr)
        return 2
    if args.summary:  # replaced only when it is a summary of ours (holmesvau.output_guard), checked first
        try:
            ours = json_object_with("dataset", "split", "done", "failures")
            check_output_file(args.summary, [args.instructions], ours, "--summary", "summary")
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return max(cut(args, d, s) for d, s in pairs)


if __name__ == "__main__":
    raise SystemExit(main())
