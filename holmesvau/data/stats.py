"""Statistics of a HIVAU-70k folder: instruction counts per split/dataset/level/task with answer word counts,
annotation counts and durations per raw database, and the segment files present.

    python -m holmesvau.data.stats ROOT                 # print tables
    python -m holmesvau.data.stats ROOT --json stats.json

JSON: {"instructions": {"<split>": {"<level>/<task>": n}}, "instructions_by_dataset": {"<split>": {"<dataset>":
{"<level>/<task>": n}}}, "answer_words": {"<split>": {"<level>/<task>": {"mean", "total"}}}, "annotations":
{"<database>": {...}}, "videos": {"<dataset>/<kind>/<split>": n}, "problems": [...]}.
"""

from __future__ import annotations

import argparse
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from holmesvau.data.annotations import RawVideo, load_raw_database_report
from holmesvau.data.instructions import read_instructions_report
from holmesvau.files import atomic_write_json

SPLIT_RE = re.compile(r"^merge_instruction_(?P<split>.+)_final$")


def _words(text: str) -> int:
    return len(text.split())


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    parts = {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "total": sum(values)}
    return {"n": len(values), **{k: round(v, 3) for k, v in parts.items()}}


def instruction_stats(folder: Path) -> tuple[dict, dict, dict, list[str]]:
    counts, by_dataset, words, problems = {}, {}, {}, []
    for f in sorted(folder.glob("*.jsonl")):
        m = SPLIT_RE.match(f.stem)
        split = m["split"] if m else f.stem
        rows, bad = read_instructions_report(f)
        problems += [str(p) for p in bad]
        c, d, w = Counter(), defaultdict(Counter), defaultdict(list)
        for r in rows:
            c[r.level_task] += 1
            d[r.dataset][r.level_task] += 1
            w[r.level_task].append(_words(r.answer))
        counts[split] = dict(sorted(c.items()))
        by_dataset[split] = {k: dict(sorted(v.items())) for k, v in sorted(d.items())}
        words[split] = {
            k: {"mean": round(statistics.fmean(v), 2), "total": sum(v)} for k, v in sorted(w.items())
        }
    return counts, by_dataset, words, problems


def database_stats(videos: dict[str, RawVideo]) -> dict:
    vs = list(videos.values())
    events = [e - s for v in vs for s, e in v.events]
    clips = [e - s for v in vs for g in v.clips for s, e in g]
    return {
        "videos": len(vs),
        "anomalous": sum(v.is_anomalous for v in vs),
        "normal": sum(not v.is_anomalous for v in vs),
        "events": len(events),
        "clips": len(clips),
        "hours": round(sum(v.duration_s for v in vs) / 3600, 3),
        "labels": dict(sorted(Counter(lab for v in vs for lab in v.label).items())),
        "video_duration_s": _summary([v.duration_s for v in vs]),
        "event_duration_s": _summary(events),
        "clip_duration_s": _summary(clips),
        "words": {
            "clip_caption": _summary([_words(t) for v in vs for g in v.clip_captions for t in g]),
            "event_summary": _summary([_words(t) for v in vs for t in v.event_summaries]),
            "video_summary": _summary([_words(v.video_summary) for v in vs]),
        },
    }


def collect(root: str | Path) -> dict:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"HIVAU-70k folder not found: {root}")
    out: dict = {"root": str(root)}
    counts, by_dataset, words, problems = instruction_stats(root / "instruction")
    out.update(instructions=counts, instructions_by_dataset=by_dataset, answer_words=words)
    out["annotations"] = {}
    for f in sorted((root / "raw_annotations").glob("*.json")):
        videos, found = load_raw_database_report(f)  # every problem listed, none warned
        problems += [f"{f.name}: {p}" for p in found]
        out["annotations"][f.stem] = database_stats(videos)
    vroot = root / "videos"
    folders = sorted(p for p in vroot.glob("*/*/*") if p.is_dir())
    out["videos"] = {"/".join(f.relative_to(vroot).parts): sum(1 for _ in f.glob("*.mp4")) for f in folders}
    out["problems"] = problems
    return out


def format_stats(s: dict) -> str:
    lines = []
    for split, counts in s["instructions"].items():
        lines.append(f"instructions [{split}]: {sum(counts.values())} rows")
        for key, n in counts.items():
            per = ", ".join(f"{d} {c.get(key, 0)}" for d, c in s["instructions_by_dataset"][split].items())
            w = s["answer_words"][split][key]["mean"]
            lines.append(f"  {key:<22} {n:>7}   ({per}; answer {w} words on average)")
    for name, a in s["annotations"].items():
        lines.append(
            f"annotations [{name}]: {a['videos']} videos ({a['anomalous']} anomalous, {a['normal']} normal), "
            f"{a['events']} events, {a['clips']} clips, {a['hours']} h"
        )
        summaries = [(f"{k:<18}", a[k]) for k in ("video_duration_s", "event_duration_s", "clip_duration_s")]
        summaries += [(f"words/{k:<13}", d) for k, d in a["words"].items()]
        for label, d in summaries:
            if d["n"]:
                lines.append(f"  {label} mean {d['mean']:>8}  min {d['min']:>8}  max {d['max']:>9}")
    for folder, n in s["videos"].items():
        lines.append(f"videos/{folder}: {n} files")
    if s["problems"]:
        lines.append(f"{len(s['problems'])} problem(s), first: {s['problems'][0]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m holmesvau.data.stats", description=__doc__.split("\n\n")[0])
    ap.add_argument("root", help="the HIVAU-70k folder (instruction/, raw_annotations/, videos/)")
    ap.add_argument("--json", dest="json_out", help="also write the statistics to this JSON file")
    args = ap.parse_args(argv)
    s = collect(args.root)
    print(format_stats(s))
    if args.json_out:
        atomic_write_json(args.json_out, s)
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
