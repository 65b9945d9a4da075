"""Training data: the meta file, instruction rows, and how many frames of which a sample is made.

Meta file (json), one entry per dataset; relative paths are relative to the meta file itself:

    {"hivau70k": {"root": "../../HIVAU-70k/videos",
                  "annotation": "../../HIVAU-70k/instruction/merge_instruction_train_final.jsonl",
                  "repeat_time": 1}}

Rows come in the training format (`conversations`, optional `sampled_frames`) or the test format (`prompt`/`anwser`,
converted on the fly). Frames per sample follow the original recipe (clip 6-12 at random, event 12, video 12), one
per equal segment, or the row's `sampled_frames`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holmesvau.data.instructions import InstructionProblem, parse_instruction, to_conversations
from holmesvau.jsonl import JsonlProblem, iter_jsonl
from holmesvau.paths import inside_root


class MetaError(ValueError):
    """A meta file that cannot be used: the message names the file and the entry."""


@dataclass
class DatasetSpec:
    name: str
    root: Path  # video folder; row `video` paths are relative to it
    annotation: Path  # jsonl
    repeat_time: float = 1.0


@dataclass
class Row:
    id: int | str
    type: str  # clip | event | video
    video: Path
    conversations: list[dict]
    sampled_frames: list[int] | None
    source: str  # "annotation.jsonl:LINE", for reports


@dataclass
class FrameConfig:
    """Frames per sample by row type (one 448 tile each). Fewer frames fit smaller GPUs (and fast tests)."""

    clip_min: int = 6
    clip_max: int = 12
    event: int = 12
    video: int = 12

    def __post_init__(self) -> None:
        if not 1 <= self.clip_min <= self.clip_max:
            raise ValueError(f"need 1 <= clip_min <= clip_max, got {self.clip_min}, {self.clip_max}")
        if self.event < 1 or self.video < 1:
            raise ValueError("event and video frame counts must be positive")


def load_meta(path: str | Path) -> list[DatasetSpec]:
    """Datasets named by a meta file; relative `root`/`annotation` resolve against the meta file's folder."""
    path = Path(path)
    if not path.is_file():
        raise MetaError(f"meta file not found: {path}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MetaError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(meta, dict) or not meta:
        raise MetaError(f"{path}: expected an object {{name: {{root, annotation, repeat_time}}}}")
    specs = []
    for name, entry in meta.items():
        if not isinstance(entry, dict) or "annotation" not in entry or "root" not in entry:
            raise MetaError(f"{path}: entry {name!r} needs 'root' and 'annotation'")
        annotation = path.parent / Path(entry["annotation"]).expanduser()
        if not annotation.is_file():
            raise MetaError(f"{path}: entry {name!r}: annotation file not found: {annotation}")
        repeat = float(entry.get("repeat_time", 1.0))
        if repeat <= 0:
            raise MetaError(f"{path}: entry {name!r}: repeat_time must be positive, got {repeat}")
        specs.append(DatasetSpec(name, path.parent / Path(entry["root"]).expanduser(), annotation, repeat))
    return specs


def parse_row(obj: object, root: Path, source: str = "") -> Row:
    """One decoded jsonl row -> Row (ValueError saying what is wrong). `task` is optional for training."""
    if isinstance(obj, dict) and "task" not in obj:
        obj = {**obj, "task": "unknown"}
    inst = parse_instruction(obj)
    turns = to_conversations(inst)
    if turns and turns[0].get("from") != "human":
        turns = turns[1:]  # as the original: a leading non-human turn is dropped
    roles = [t.get("from") for t in turns]
    if len(turns) < 2 or len(turns) % 2 or roles != ["human", "gpt"] * (len(turns) // 2):
        raise ValueError(f"conversations must alternate human/gpt turns, got {roles}")
    video = inside_root(root, inst.video, "the dataset's root")  # a row never reads outside its root
    return Row(inst.id, inst.type, video, turns, inst.sampled_frames, source)


def read_rows(spec: DatasetSpec) -> tuple[list[Row], list[InstructionProblem]]:
    """Well-formed rows of one dataset (repeat factor applied) and a problem for each malformed line."""
    rows: list[Row] = []
    problems: list[InstructionProblem] = []
    # bad lines skipped and reported (holmesvau.jsonl); repeated ids kept: training rows are not keyed by id
    for item in iter_jsonl(spec.annotation, parse=lambda obj: parse_row(obj, spec.root)):
        if isinstance(item, JsonlProblem):
            problems.append(InstructionProblem(item.path, item.line, item.reason))
        else:
            item[1].source = f"{spec.annotation}:{item[0]}"
            rows.append(item[1])
    return repeat_rows(rows, spec.repeat_time), problems


def repeat_rows(rows: list, repeat_time: float) -> list:
    """The original's repeat factor: < 1 keeps the first fraction, > 1 repeats (fractional part from the start)."""
    whole = int(repeat_time)
    return rows * whole + rows[: int(len(rows) * (repeat_time - whole))]


def num_frames_for(row_type: str, frames: FrameConfig, rng: random.Random) -> int:
    """Frames for a row of this type: clip random in [clip_min, clip_max]; event and video fixed."""
    if row_type == "clip":
        return rng.randint(frames.clip_min, frames.clip_max)
    if row_type == "event":
        return frames.event
    if row_type == "video":
        return frames.video
    raise ValueError(f"unknown row type {row_type!r}")


def segment_indices(video_len: int, n: int, rng: random.Random | None = None) -> list[int]:
    """`n` frame indices, one per equal segment of the video: a random frame of each segment when `rng` is given
    (training), else each segment's middle (evaluation). Short videos repeat their last index to reach `n`."""
    if video_len <= 0 or n <= 0:
        raise ValueError(f"need a non-empty video and n > 0, got video_len={video_len}, n={n}")
    k = min(n, video_len)
    bounds = np.linspace(0, video_len, k + 1).astype(int)
    out = []
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        end = max(end, start + 1)
        out.append(rng.randrange(start, end) if rng is not None else (start + end - 1) // 2)
    return out + [out[-1]] * (n - k)


def frame_plan(
    row: Row, video_len: int, frames: FrameConfig, rng: random.Random, train: bool = True
) -> list[int]:
    """Frame indices for one sample: the row's `sampled_frames` if any, else the per-type rule."""
    if row.sampled_frames:
        bad = [i for i in row.sampled_frames if not 0 <= i < video_len]
        if bad:
            raise ValueError(f"sampled_frames {bad[:3]} outside the video's {video_len} frames")
        return list(row.sampled_frames)
    n = num_frames_for(row.type, frames, rng)
    return segment_indices(video_len, n, rng if train else None)
