"""Frame-level detection ground truth from either annotation source, as GtVideo records.

- HIVAU-70k raw database (`ucf_database_test.json`, ...): a frame is anomalous when it lies inside an event of a
  video whose `label` list is non-empty (events of normal videos are normal segments). Seconds -> frames follows
  holmesvau.data.annotations (round half up, [first, stop)).
- The UCF-Crime temporal annotation txt (`Temporal_Anomaly_Annotation_for_Testing_Videos.txt`), one video a line:
  `Arson011_x264.mp4  Arson  150  420  680  1267` (class, then start/end frame pairs, -1 -1 for none; a pair
  covers frames [start, end) as in the usual UCF-Crime evaluation scripts). Lines without a class column (the
  XD-Violence `annotations.txt` style, `name s1 e1 ...`) are accepted too. The txt has no frame counts: the
  frame count comes from the score file, else from the number of scores x stride.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".mpg", ".mpeg")


def video_key(name: str) -> str:
    """Name used to match scores and annotations: file name without folders and without a video extension
    (XD-Violence names contain dots, so only known extensions are removed)."""
    name = Path(name.replace("\\", "/")).name
    for ext in VIDEO_EXTS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


@dataclass
class GtVideo:
    name: str
    anomalous: bool
    intervals: list[tuple[int, int]] = field(default_factory=list)  # anomalous frames [first, stop)
    n_frames: int | None = None  # None: unknown (txt annotations)
    fps: float | None = None
    label: str = ""

    def frame_labels(self, n_frames: int | None = None) -> np.ndarray:
        """(n,) uint8 labels; n = n_frames or the annotation's own frame count."""
        n = n_frames if n_frames is not None else self.n_frames
        if n is None:
            raise ValueError(f"{self.name}: the annotation has no frame count; pass n_frames")
        labels = np.zeros(n, dtype=np.uint8)
        if self.anomalous:
            for first, stop in self.intervals:
                labels[max(first, 0) : max(min(stop, n), 0)] = 1
        return labels


def gt_from_raw_database(path: str | Path) -> dict[str, GtVideo]:
    """GtVideo per video of a HIVAU-70k raw annotation database (malformed videos skipped with a warning)."""
    from holmesvau.data.annotations import load_raw_database

    out = {}
    for name, v in load_raw_database(path, strict=False).items():
        intervals = [v.frame_range(s, e) for s, e in v.events] if v.is_anomalous else []
        out[video_key(name)] = GtVideo(
            video_key(name), v.is_anomalous, intervals, v.n_frames, v.fps, "/".join(v.label) or "Normal"
        )
    return out


_INT = re.compile(r"^-?\d+$")


def parse_temporal_txt(path: str | Path) -> dict[str, GtVideo]:
    """Parse a UCF-Crime style temporal annotation txt (see the module docstring); ValueError names file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"temporal annotation file not found: {path}")
    out: dict[str, GtVideo] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        name, rest = video_key(tokens[0]), tokens[1:]
        label = rest.pop(0) if rest and not _INT.match(rest[0]) else ""
        if not all(_INT.match(t) for t in rest) or len(rest) % 2:
            raise ValueError(
                f"{path}:{lineno}: expected `name [class] start end [start end ...]`, got {line!r}"
            )
        nums = [int(t) for t in rest]
        intervals = []
        for s, e in zip(nums[::2], nums[1::2]):
            if s == -1 and e == -1:
                continue
            if s < 0 or e < s:
                raise ValueError(f"{path}:{lineno}: bad frame interval {s} {e}")
            intervals.append((s, e))
        anomalous = bool(intervals) and label.lower() != "normal"
        out[name] = GtVideo(
            name, anomalous, intervals, None, None, label or ("Anomaly" if anomalous else "Normal")
        )
    return out


def load_ground_truth(path: str | Path) -> dict[str, GtVideo]:
    """A raw database (.json) or a temporal annotation txt (any other suffix)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return gt_from_raw_database(path)
    return parse_temporal_txt(path)
