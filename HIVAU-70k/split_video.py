"""Cut the annotated events and clips of HIVAU-70k out of the source videos (resumable, parallel).

    python HIVAU-70k/split_video.py --root HIVAU-70k --dataset ucf-crime --split test
    python HIVAU-70k/split_video.py --root HIVAU-70k --dataset xd-violence --split train --workers 8

Reads ROOT/instruction/merge_instruction_{split}_final.jsonl (the segments it names) and
ROOT/raw_annotations/{ucf,xd}_database_{split}.json (their times), takes sources from
ROOT/videos/{dataset}/videos/{split}/<name>.mp4 and writes ROOT/videos/{dataset}/{events,clips}/{split}/.
Run it again after an interruption: complete outputs are skipped. The summary (done / skipped / failed with
reasons) is printed and written to ROOT/videos/{dataset}/split_video_{split}.json (or --summary). Exit status 1
when any segment failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from holmesvau.data.layout import DATASETS, SPLITS, plan_segments
from holmesvau.data.segments import METHODS, run_jobs, write_summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--root", default="HIVAU-70k", help="the HIVAU-70k folder (instruction/, raw_annotations/, videos/)"
    )
    ap.add_argument("--dataset", required=True, choices=list(DATASETS))
    ap.add_argument("--split", required=True, choices=list(SPLITS))
    ap.add_argument(
        "--workers", type=int, default=None, help="parallel cutting processes (default: CPU count)"
    )
    ap.add_argument("--instructions", help="instruction file naming the segments (default: the split's file)")
    ap.add_argument(
        "--all-annotated", action="store_true", help="cut every event and clip of the raw database"
    )
    ap.add_argument("--method", default="auto", choices=list(METHODS), help="auto may stream copy")
    ap.add_argument("--summary", help="where to write the JSON summary")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    try:
        plan = plan_segments(args.root, args.dataset, args.split, args.instructions, args.all_annotated)
    except (FileNotFoundError, ValueError) as e:  # missing/malformed annotation or instruction file
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(plan.jobs)} segments to check/cut, {len(plan.problems)} that cannot be cut", file=sys.stderr)
    summary, _ = run_jobs(plan.jobs, args.workers, args.method, progress=not args.no_progress)
    summary.failed += len(plan.problems)
    summary.failures = plan.problems + summary.failures
    out = Path(args.summary or Path(args.root) / "videos" / args.dataset / f"split_video_{args.split}.json")
    write_summary(out, summary, {"dataset": args.dataset, "split": args.split})
    brief = {k: v for k, v in summary.to_json().items() if k != "failures"}
    for f in summary.failures[:20]:
        print(f"failed: {f['output']}: {f['reason']}", file=sys.stderr)
    if len(summary.failures) > 20:
        print(f"... {len(summary.failures) - 20} more failures in {out}", file=sys.stderr)
    print(json.dumps({**brief, "summary": str(out)}))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
