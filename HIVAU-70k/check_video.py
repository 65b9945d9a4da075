"""Check that every video the HIVAU-70k instruction files name exists, opens, has frames and decodes to its end.

    cd HIVAU-70k && python check_video.py          # every dataset and split whose source videos are present
    python HIVAU-70k/check_video.py --root HIVAU-70k
    python HIVAU-70k/check_video.py --root HIVAU-70k --split test --dataset ucf-crime --json check_test.json

ROOT defaults to the folder of this script. Without --dataset / --split, the videos of every (dataset, split) whose
source videos are in place are checked (those without are listed as skipped); with them, exactly what was asked.
Lists the missing and broken videos (paths relative to ROOT/videos) and exits with status 1 when there is any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from holmesvau.data.check import CheckReport, check_videos
from holmesvau.data.download import FETCH_HINT
from holmesvau.data.layout import DATASETS, SPLITS, instruction_file, no_sources_message, scan_sources
from holmesvau.files import atomic_write_json

HERE = Path(__file__).resolve().parent


def merge(reports: list[CheckReport]) -> CheckReport:
    out = CheckReport()
    for r in reports:
        out.instruction_files += [f for f in r.instruction_files if f not in out.instruction_files]
        out.checked += r.checked
        out.ok += r.ok
        out.missing += r.missing
        out.broken += r.broken
        out.malformed_lines += [m for m in r.malformed_lines if m not in out.malformed_lines]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(HERE), help="the HIVAU-70k folder (default: this script's folder)")
    ap.add_argument("--split", nargs="+", choices=list(SPLITS), help="default: each split with source videos")
    ap.add_argument(
        "--dataset", nargs="+", choices=list(DATASETS), help="default: each dataset with source videos"
    )
    ap.add_argument("--instructions", nargs="+", help="check the videos of these instruction files instead")
    ap.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU count)")
    ap.add_argument("--json", dest="json_out", help="write the report to this JSON file")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    if args.json_out and Path(args.json_out).is_dir():
        print(f"error: --json {args.json_out} is a folder; name a file", file=sys.stderr)
        return 2
    # (splits, datasets) to check together; the default: what the source videos present allow
    groups = [(args.split, args.dataset)]
    hint = FETCH_HINT.format(root=args.root)
    if args.instructions is None and not (args.split and args.dataset):
        scan = scan_sources(args.root, args.dataset, args.split)
        print(scan.describe(args.root), file=sys.stderr)
        if not scan.found and not (args.split or args.dataset):
            print(f"error: {no_sources_message(args.root)}", file=sys.stderr)
            return 2
        by_split: dict[str, list[str]] = {}
        for d, s in scan.found:
            if instruction_file(args.root, s).is_file() or args.split:
                by_split.setdefault(s, []).append(d)
            else:
                print(f"{d}/{s}: skipped, no {instruction_file(args.root, s)} ({hint})", file=sys.stderr)
        if by_split:
            groups = [([s], ds) for s, ds in by_split.items()]
        elif not (args.split or args.dataset):
            folder = Path(args.root) / "instruction"
            print(f"error: no instruction files under {folder} ({hint})", file=sys.stderr)
            return 2
    progress = not args.no_progress
    try:
        reports = [
            check_videos(args.root, splits, datasets, args.instructions, args.workers, progress)
            for splits, datasets in groups
        ]
    except FileNotFoundError as e:
        print(f"error: {e} ({hint})", file=sys.stderr)
        return 2
    report = merge(reports)
    for rel in report.missing:
        print(f"missing: {rel}")
    for b in report.broken:
        print(f"broken: {b['video']}: {b['reason']}")
    for line in report.malformed_lines:
        print(f"malformed instruction line: {line}", file=sys.stderr)
    if args.json_out:
        atomic_write_json(args.json_out, report.to_json())  # a kill leaves the previous report, not half
    counts = f"{report.ok} ok, {len(report.missing)} missing, {len(report.broken)} broken"
    print(f"{report.checked} videos checked: {counts}", file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
