"""HIVAU-70k raw annotation databases (`{ucf,xd}_database_{train,test}.json`) as typed, validated data.

Seconds -> frames rule (frame labels and segment cutting): [start, end) covers the frames round(start * fps) ..
round(end * fps) - 1 (round half up), clamped to [0, n_frames]: annotations are frame times with 3 decimals
(8.333 s = frame 250 at 30 fps), so rounding recovers the annotator's frame.

Validation notes, from the released test database: events and clips may end a frame or two past the last frame
(accepted within `end_slack_frames`, then clamped); clips may run past their event's end; in 10 clips of normal
videos a clip is filed under the neighbouring event. A clip that does not overlap its event is an error in an
anomalous video and a warning in a normal one (all its segments are normal either way).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REQUIRED_FIELDS = ("n_frames", "fps", "label", "events", "clips", "clips_caption", "events_summary",
                   "events_summary_split", "video_summary", "video_summary_split")  # fmt: skip
SEGMENT_RE = re.compile(r"(?P<video>.+)_E(?P<event>\d+)(?:C(?P<clip>\d+))?(?P<ext>\.mp4)?", re.DOTALL)


class AnnotationError(ValueError):
    """A raw annotation database (or one of its videos) is malformed; the message names the video and field."""


@dataclass(frozen=True)
class AnnotationProblem:
    video: str
    field: str
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.severity}: {self.video}: {self.field}: {self.message}"


@dataclass
class SummarySplit:
    """A summary split into its three parts; `analysis` is absent (None) for normal videos/events."""

    judgement: str
    description: str
    analysis: str | None = None


@dataclass
class RawVideo:
    name: str
    n_frames: int
    fps: float
    label: list[str]
    events: list[tuple[float, float]]
    clips: list[list[tuple[float, float]]]
    clip_captions: list[list[str]] = field(default_factory=list)
    event_summaries: list[str] = field(default_factory=list)
    event_summary_splits: list[SummarySplit] = field(default_factory=list)
    video_summary: str = ""
    video_summary_split: SummarySplit | None = None

    @property
    def is_anomalous(self) -> bool:
        return len(self.label) > 0

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def frame_range(self, start_s: float, end_s: float) -> tuple[int, int]:
        """[first, stop) frame indices of an interval in seconds (module docstring rule)."""
        return seconds_to_frames(start_s, end_s, self.fps, self.n_frames)

    def frame_labels(self) -> np.ndarray:
        """(n_frames,) uint8: 1 inside an event of an anomalous video, else 0 (normal videos are all 0)."""
        labels = np.zeros(self.n_frames, dtype=np.uint8)
        if self.is_anomalous:
            for start, end in self.events:
                first, stop = self.frame_range(start, end)
                labels[first:stop] = 1
        return labels


def seconds_to_frames(start_s: float, end_s: float, fps: float, n_frames: int) -> tuple[int, int]:
    """[first, stop) frames of [start_s, end_s): round half up, clamped to [0, n_frames]."""
    first = min(max(math.floor(start_s * fps + 0.5), 0), n_frames)
    stop = min(max(math.floor(end_s * fps + 0.5), first), n_frames)
    return first, stop


def event_segment_name(video: str, i: int) -> str:
    return f"{video}_E{i}.mp4"


def clip_segment_name(video: str, i: int, j: int) -> str:
    return f"{video}_E{i}C{j}.mp4"


def parse_segment_name(name: str) -> tuple[str, int, int | None]:
    """'Abuse028_x264_E0C1.mp4' -> ('Abuse028_x264', 0, 1); '..._E2.mp4' -> (video, 2, None). Path parts ignored."""
    m = SEGMENT_RE.fullmatch(Path(name).name)
    if m is None:
        raise ValueError(f"not a segment name ({{video}}_E{{i}}.mp4 or {{video}}_E{{i}}C{{j}}.mp4): {name!r}")
    return m["video"], int(m["event"]), None if m["clip"] is None else int(m["clip"])


def _number(x: object) -> bool:
    """A finite int or float (a bool is not a number here)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _split(value: object) -> SummarySplit | None:
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) for k in ("judgement", "description")
    ):
        return None
    analysis = value.get("analysis")
    return SummarySplit(
        value["judgement"], value["description"], analysis if isinstance(analysis, str) else None
    )


def _strings(value: object, n: int) -> bool:
    """A list of `n` strings."""
    return isinstance(value, list) and len(value) == n and all(isinstance(t, str) for t in value)


def validate_raw_video(
    name: str, entry: object, end_slack_frames: int = 3
) -> tuple[RawVideo | None, list[AnnotationProblem]]:
    """Parse and check one database entry; returns (video or None when it has errors, problems)."""
    problems: list[AnnotationProblem] = []

    def err(fld: str, msg: str, severity: str = "error") -> None:
        problems.append(AnnotationProblem(name, fld, msg, severity))

    if not isinstance(entry, dict):
        err("-", f"entry is a {type(entry).__name__}, expected an object")
        return None, problems
    missing = [f for f in REQUIRED_FIELDS if f not in entry]
    if missing:
        err(",".join(missing), "missing field" + ("s" if len(missing) > 1 else ""))
        return None, problems
    n_frames, fps = entry["n_frames"], entry["fps"]
    if not isinstance(n_frames, int) or isinstance(n_frames, bool) or n_frames <= 0:
        err("n_frames", f"must be a positive integer, got {n_frames!r}")
    if not (_number(fps) and fps > 0):
        err("fps", f"must be a positive number, got {fps!r}")
    label = entry["label"]
    if not isinstance(label, list) or not all(isinstance(x, str) for x in label):
        err("label", f"must be a list of strings, got {label!r}")
    if problems:
        return None, problems
    duration = n_frames / fps
    limit = duration + end_slack_frames / fps
    video_span = f"the video [0, {duration:.3f}] s ({n_frames} frames at {fps} fps)"

    def check_interval(fld: str, raw: object) -> tuple[float, float] | None:
        pair = isinstance(raw, (list, tuple)) and len(raw) == 2 and all(_number(x) for x in raw)
        iv = (float(raw[0]), float(raw[1])) if pair else None
        if iv is None:
            err(fld, f"must be [start, end] in seconds, got {raw!r}")
        elif iv[1] <= iv[0]:
            err(fld, f"end <= start: {list(iv)}")
        elif iv[0] < 0 or iv[1] > limit:
            err(fld, f"{list(iv)} lies outside {video_span}")
        return iv

    events_raw, clips_raw = entry["events"], entry["clips"]
    if not isinstance(events_raw, list) or not isinstance(clips_raw, list):
        err("events/clips", "must be lists")
        return None, problems
    if len(clips_raw) != len(events_raw):
        err("clips", f"{len(clips_raw)} clip groups for {len(events_raw)} events")
        return None, problems
    events = [check_interval(f"events[{i}]", ev) for i, ev in enumerate(events_raw)]
    clips: list[list[tuple[float, float] | None]] = []
    for i, group in enumerate(clips_raw):
        if not isinstance(group, list):
            err(f"clips[{i}]", f"must be a list of [start, end], got {group!r}")
            clips.append([])
            continue
        clips.append([check_interval(f"clips[{i}][{j}]", c) for j, c in enumerate(group)])
        ev = events[i]
        for j, c in enumerate(clips[-1]):
            if ev is not None and c is not None and c[0] < c[1] and (c[1] <= ev[0] or c[0] >= ev[1]):
                severity = "error" if label else "warning"
                err(f"clips[{i}][{j}]", f"{list(c)} does not overlap its event {list(ev)}", severity)
    captions = entry["clips_caption"]
    per_clip = isinstance(captions, list) and all(_strings(g, len(cg)) for g, cg in zip(captions, clips))
    if not per_clip or len(captions) != len(clips):
        err("clips_caption", "must hold one caption string per clip, grouped like clips")
    summaries = entry["events_summary"]
    if not _strings(summaries, len(events)):
        err("events_summary", f"must hold one string per event ({len(events)})")
    splits_raw = entry["events_summary_split"]
    splits = [_split(s) for s in splits_raw] if isinstance(splits_raw, list) else []
    if len(splits) != len(events) or any(s is None for s in splits):
        err("events_summary_split", "must hold one {judgement, description[, analysis]} object per event")
    if not isinstance(entry["video_summary"], str):
        err("video_summary", "must be a string")
    video_split = _split(entry["video_summary_split"])
    if video_split is None:
        err("video_summary_split", "must be a {judgement, description[, analysis]} object")
    if any(p.severity == "error" for p in problems):
        return None, problems
    video = RawVideo(
        name, n_frames, float(fps), list(label), list(events), [list(g) for g in clips],
        [list(g) for g in captions], list(summaries), splits, entry["video_summary"], video_split,
    )  # fmt: skip
    return video, problems


def read_database_json(path: str | Path) -> dict:
    """The {video name: entry} object of a raw annotation database file, with errors that name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"raw annotation database not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected an object mapping video names to annotations")
    return data


def load_raw_database_report(
    path: str | Path, end_slack_frames: int = 3
) -> tuple[dict[str, RawVideo], list[AnnotationProblem]]:
    """All valid videos of a database file and every problem found (videos with errors are left out)."""
    data = read_database_json(path)
    videos: dict[str, RawVideo] = {}
    problems: list[AnnotationProblem] = []
    for name, entry in data.items():
        video, found = validate_raw_video(name, entry, end_slack_frames)
        problems.extend(found)
        if video is not None:
            videos[name] = video
    return videos, problems


def load_raw_database(
    path: str | Path, strict: bool = True, end_slack_frames: int = 3
) -> dict[str, RawVideo]:
    """Load a raw annotation database. strict: raise AnnotationError listing every error; else skip those videos
    with a warning. Warnings (see module docstring) never stop loading."""
    videos, problems = load_raw_database_report(path, end_slack_frames)
    errors = [p for p in problems if p.severity == "error"]
    if errors and strict:
        shown = "\n  ".join(str(p) for p in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise AnnotationError(f"{path}: {len(errors)} annotation error(s):\n  {shown}{more}")
    if errors:
        bad = sorted({p.video for p in errors})
        warnings.warn(f"{path}: skipped {len(bad)} malformed video(s): {', '.join(bad[:10])}", stacklevel=2)
    return videos
