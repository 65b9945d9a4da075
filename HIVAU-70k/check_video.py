"""Check that every video the HIVAU-70k instruction files name exists, opens, has frames and decodes to its end.

    python HIVAU-70k/check_video.py --root HIVAU-70k
    python HIVAU-70k/check_video.py --root HIVAU-70k --split test --dataset ucf-crime --json check_test.json

Lists the missing and broken videos (paths relative to ROOT/videos) and exits with status 1 when there is any.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from holmesvau.data.check import check_videos
from holmesvau.data.layout import DATASETS, SPLITS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--root", default="HIVAU-70k", help="the HIVAU-70k folder (instruction/, raw_annotations/, videos/)"
    )
    ap.add_argument(
        "--split", nargs="+", choices=list(SPLITS), help="default: every split with an instruction file"
    )
    ap.add_argument("--dataset", nargs="+", choices=list(DATASETS), help="default: both")
    ap.add_argument("--instructions", nargs="+", help="check the videos of these instruction files instead")
    ap.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU count)")
    ap.add_argument("--json", dest="json_out", help="write the report to this JSON file")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    try:
        report = check_videos(
            args.root,
            args.split,
            args.dataset,
            args.instructions,
            args.workers,
            progress=not args.no_progress,
        )
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for rel in report.missing:
        print(f"missing: {rel}")
    for b in report.broken:
        print(f"broken: {b['video']}: {b['reason']}")
    for line in report.malformed_lines:
        print(f"malformed instruction line: {line}", file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    print(
        f"{report.checked} videos checked: {report.ok} ok, {len(report.missing)} missing, {len(report.broken)} broken",
        file=sys.stderr,
    )
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
