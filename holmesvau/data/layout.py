"""The HIVAU-70k folder layout (as in the original release) and the list of segments to cut.

    ROOT/
      instruction/merge_instruction_{train,test}_final.jsonl
      raw_annotations/{ucf,xd}_database_{train,test}.json
      videos/{ucf-crime,xd-violence}/
        videos/{train,test}/<name>.mp4            source videos (you put them here)
        events/{train,test}/<name>_E{i}.mp4       cut by HIVAU-70k/split_video.py
        clips/{train,test}/<name>_E{i}C{j}.mp4

Instruction rows name their video relative to ROOT/videos (e.g. "ucf-crime/clips/test/Abuse028_x264_E0C0.mp4").
HIVAU-70k/split_video.py and check_video.py with no --dataset / --split process every (dataset, split) whose source
folder holds a video (`scan_sources`), and say which they skipped and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from holmesvau.data.annotations import (
    clip_segment_name,
    event_segment_name,
    load_raw_database,
    parse_segment_name,
)
from holmesvau.data.instructions import read_instructions
from holmesvau.data.segments import SegmentJob
from holmesvau.paths import inside_root

DATASETS = {"ucf-crime": "ucf", "xd-violence": "xd"}  # folder name -> raw database prefix
SPLITS = ("train", "test")
SOURCE_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov")


def instruction_file(root: str | Path, split: str) -> Path:
    return Path(root) / "instruction" / f"merge_instruction_{split}_final.jsonl"


def raw_database_file(root: str | Path, dataset: str, split: str) -> Path:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r} (expected one of {', '.join(DATASETS)})")
    return Path(root) / "raw_annotations" / f"{DATASETS[dataset]}_database_{split}.json"


def video_path(root: str | Path, rel: str) -> Path:
    """The file an instruction row's `video` names; ValueError (holmesvau.paths) when it leads out of ROOT/videos."""
    return inside_root(Path(root) / "videos", rel, "ROOT/videos")


def source_folder(root: str | Path, dataset: str, split: str) -> Path:
    return Path(root) / "videos" / dataset / "videos" / split


def source_video(root: str | Path, dataset: str, split: str, name: str) -> Path:
    """ROOT/videos/{dataset}/videos/{split}/{name}.mp4 (or another common extension if that is what exists)."""
    folder = source_folder(root, dataset, split)
    for ext in SOURCE_EXTS:
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    return folder / f"{name}.mp4"


def segment_rel(dataset: str, split: str, video: str, event: int, clip: int | None = None) -> str:
    if clip is None:
        return f"{dataset}/events/{split}/{event_segment_name(video, event)}"
    return f"{dataset}/clips/{split}/{clip_segment_name(video, event, clip)}"


@dataclass
class SegmentPlan:
    jobs: list[SegmentJob] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # {"output", "reason"}: cannot be cut at all


def plan_segments(
    root: str | Path, dataset: str, split: str, instructions: str | Path | None = None,
    all_annotated: bool = False, strict: bool = False,
) -> SegmentPlan:  # fmt: skip
    """Jobs for every segment of `dataset` the split's instruction file names (all_annotated: every event and clip
    of the raw database); unresolvable names and empty segments are problems. strict: bad annotations raise."""
    videos = load_raw_database(raw_database_file(root, dataset, split), strict=strict)
    plan = SegmentPlan()
    if all_annotated:
        vs = list(videos.values())
        wanted = [(v.name, i, None, None) for v in vs for i in range(len(v.events))]
        wanted += [(v.name, i, j, None) for v in vs for i, g in enumerate(v.clips) for j in range(len(g))]
    else:
        rows = read_instructions(instructions or instruction_file(root, split), on_error="skip")
        wanted, seen = [], set()
        for r in rows:
            if r.type == "video" or r.dataset != dataset or r.video in seen:
                continue
            seen.add(r.video)
            try:
                # a row names where its segment goes: never outside ROOT/videos/DATASET/{events,clips}/
                rel = video_path(root, r.video).relative_to(Path(root) / "videos")
                if rel.parts[1:2] not in (("events",), ("clips",)):
                    raise ValueError(
                        f"{r.video}: segments are written under {dataset}/events/ or {dataset}/clips/"
                    )
                wanted.append((*parse_segment_name(r.video), rel.as_posix()))
            except ValueError as e:
                plan.problems.append({"output": r.video, "reason": str(e)})
    for name, event, clip, rel in wanted:  # rel: the path the instruction file names, if any
        out = str(video_path(root, rel or segment_rel(dataset, split, name, event, clip)))
        v = videos.get(name)
        if v is None:
            reason = f"video {name} not in the raw annotations"
        elif event >= len(v.events) or (clip is not None and clip >= len(v.clips[event])):
            reason = f"{name} has no event {event}" + (f" clip {clip}" if clip is not None else "")
        else:
            first, stop = v.frame_range(*(v.events[event] if clip is None else v.clips[event][clip]))
            if stop > first:
                source = str(source_video(root, dataset, split, name))
                plan.jobs.append(
                    SegmentJob(source, out, start_frame=first, num_frames=stop - first, fps=v.fps)
                )
                continue
            reason = "segment is empty after clamping to the video"
        plan.problems.append({"output": out, "reason": reason})
    return plan


@dataclass
class SourceScan:
    found: dict[tuple[str, str], int] = field(default_factory=dict)  # (dataset, split) -> number of videos
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def describe(self, root: str | Path) -> str:
        """Lines saying what was found and what is skipped, for the user."""
        lines = [f"{d}/{s}: {n} source videos" for (d, s), n in self.found.items()]
        lines += [f"{d}/{s}: skipped, no videos in {source_folder(root, d, s)}" for d, s in self.skipped]
        return "\n".join(lines)


def scan_sources(
    root: str | Path, datasets: list[str] | None = None, splits: list[str] | None = None
) -> SourceScan:
    """Every (dataset, split) of `datasets` x `splits` (default: all), split into those with source videos and not."""
    scan = SourceScan()
    for d in datasets or list(DATASETS):
        for s in splits or list(SPLITS):
            found = source_folder(root, d, s).glob("*")  # nothing when the folder is missing
            n = sum(p.suffix.lower() in SOURCE_EXTS and p.is_file() for p in found)
            if n:
                scan.found[(d, s)] = n
            else:
                scan.skipped.append((d, s))
    return scan


def no_sources_message(root: str | Path) -> str:
    return (
        f"no source videos under {Path(root) / 'videos'}/{{ucf-crime,xd-violence}}/videos/{{train,test}}/. "
        "Put the UCF-Crime / XD-Violence videos there (HIVAU-70k/README.md, step 1), or pass --root"
    )
