"""`HIVAU-70k/download.py`: the released HIVAU-70k annotation files, fetched from the original repository (pinned in
holmesvau.released) into the layout the data tools read (holmesvau.data.layout): ROOT/instruction/ and
ROOT/raw_annotations/. Each is verified by its git blob id before it is renamed into place; a file already there is
verified and kept, and one that differs is refused, never replaced (it may be yours)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from holmesvau import released
from holmesvau.data.layout import DATASETS, instruction_file, raw_database_file
from holmesvau.download import VerifyError

FETCH_HINT = "the released annotations: python HIVAU-70k/download.py --root {root} (--all: train too)"


def destinations(root: str | Path, splits: list[str]) -> dict[str, Path]:
    """Registry name -> where the data tools look for it."""
    out = {}
    for split in splits:
        out[f"merge_instruction_{split}_final.jsonl"] = instruction_file(root, split)
        for dataset in DATASETS:
            out[raw_database_file(root, dataset, split).name] = raw_database_file(root, dataset, split)
    return out


def main(argv: list[str] | None = None, default_root: str | Path = "HIVAU-70k") -> int:
    ap = argparse.ArgumentParser(description="Fetch the released HIVAU-70k annotations (verified) into ROOT.")
    ap.add_argument(
        "--root", default=str(default_root), help=f"the HIVAU-70k folder (default {default_root})"
    )
    ap.add_argument("--all", action="store_true", help="the train annotations too (default: test only)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    dsts = destinations(args.root, ["test", "train"] if args.all else ["test"])
    had = {name for name, p in dsts.items() if p.exists()}
    instead = f"copy it from https://github.com/{released.REPOSITORY}/tree/{released.COMMIT}/HIVAU-70k to"
    try:
        wanted = {name: f"{instead} {dsts[name]}" for name in dsts}
        paths = released.fetch_all(wanted, progress=False if args.quiet else None, dsts=dsts)
    except (VerifyError, released.Unreachable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        status = "verified, kept" if name in had else "fetched, verified"
        print(json.dumps({"file": str(path), "status": status}))
    return 0
