"""Frame-level detection ground truth from either annotation source, as GtVideo records.

- HIVAU-70k raw database (`ucf_database_test.json`, ...): a frame is anomalous when it lies inside an event of a
  video whose `label` list is non-empty. Seconds -> frames as holmesvau.data.annotations.
- The UCF-Crime temporal annotation txt, one video a line: `Arson011_x264.mp4  Arson  150  420  680  1267` (class,
  then start/end frame pairs, -1 -1 for none); lines without a class column (XD-Violence's `annotations.txt`) too.
  No frame counts: they come from the score file, else from scores x stride.
- A frame-count list (`test_annotation_with_frame_counts.txt`, `Class/Name.mp4 n_frames Class s1 e1 s2 e2`):
  `with_frame_counts` fills in every video's frame count (and checks both files agree).
- A test list (`test_videos.txt`, one name a line): `with_test_list` adds the listed videos without an annotation
  line as normal (the 300 normal XD-Violence test videos).
A pair (start, end) covers frames [start, end); some public evaluators include the end frame (a few hundredths of a
point of AUC/AP at most).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
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


def _parse_tokens(path: Path, lineno: int, line: str, tokens: list[str]) -> GtVideo:
    name, rest = video_key(tokens[0]), tokens[1:]
    label = rest.pop(0) if rest and not _INT.match(rest[0]) else ""
    if not all(_INT.match(t) for t in rest) or len(rest) % 2:
        raise ValueError(f"{path}:{lineno}: expected `name [class] start end [start end ...]`, got {line!r}")
    nums = [int(t) for t in rest]
    intervals = []
    for s, e in zip(nums[::2], nums[1::2]):
        if s == -1 and e == -1:
            continue
        if s < 0 or e < s:
            raise ValueError(f"{path}:{lineno}: bad frame interval {s} {e}")
        intervals.append((s, e))
    anomalous = bool(intervals) and label.lower() != "normal"
    return GtVideo(name, anomalous, intervals, None, None, label or ("Anomaly" if anomalous else "Normal"))


def parse_temporal_txt(path: str | Path) -> dict[str, GtVideo]:
    """Parse a UCF-Crime style temporal annotation txt (see the module docstring); ValueError names file:line."""
    path = Path(path)
    out: dict[str, GtVideo] = {}
    for lineno, line, tokens in _lines(path, "temporal annotation file"):
        gt = _parse_tokens(path, lineno, line, tokens)
        if gt.name in out:
            raise ValueError(f"{path}:{lineno}: {gt.name} annotated twice")
        out[gt.name] = gt
    return out


def _lines(path: Path, what: str):
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if tokens and not tokens[0].startswith("#"):
            yield lineno, line, tokens


def parse_frame_counts(path: str | Path) -> dict[str, GtVideo]:
    """`Class/Name.mp4 n_frames Class s1 e1 s2 e2` lines -> {name: GtVideo with its frame count}."""
    path = Path(path)
    out = {}
    for lineno, line, tokens in _lines(path, "frame-count list"):
        if len(tokens) < 3 or not _INT.match(tokens[1]) or int(tokens[1]) < 1:
            raise ValueError(f"{path}:{lineno}: expected `name n_frames class start end ...`, got {line!r}")
        # the rest has the temporal txt's own layout: reuse its parser on one line
        gt = _parse_tokens(path, lineno, line, [tokens[0], *tokens[2:]])
        gt.n_frames = int(tokens[1])
        out[gt.name] = gt
    return out


def with_frame_counts(gt: dict[str, GtVideo], counts_path: str | Path) -> dict[str, GtVideo]:
    """`gt` with each video's frame count from a frame-count list. Both files must list the same videos with the
    same intervals (ValueError naming the first disagreement)."""
    counts = parse_frame_counts(counts_path)
    only_gt, only_counts = sorted(set(gt) - set(counts)), sorted(set(counts) - set(gt))
    if only_gt or only_counts:
        raise ValueError(
            f"{counts_path} and the annotation list different videos: {len(only_gt)} only in the annotation "
            f"(e.g. {only_gt[:3]}), {len(only_counts)} only in the frame counts (e.g. {only_counts[:3]})"
        )
    for name, g in gt.items():
        other = counts[name]
        if other.intervals != g.intervals or other.anomalous != g.anomalous:
            raise ValueError(
                f"{name}: intervals differ between the annotation ({g.intervals}) and {counts_path} "
                f"({other.intervals})"
            )
    return {n: replace(g, intervals=list(g.intervals), n_frames=counts[n].n_frames) for n, g in gt.items()}


def read_test_list(path: str | Path) -> list[str]:
    """Video names of a test list, one a line (extensions and folders dropped), in file order; no duplicates."""
    path = Path(path)
    names = [video_key(tokens[0]) for _, _, tokens in _lines(path, "test video list")]
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        raise ValueError(f"{path}: {len(dup)} video(s) listed twice, e.g. {dup[:3]}")
    return names


def with_test_list(gt: dict[str, GtVideo], list_path: str | Path) -> dict[str, GtVideo]:
    """Every video of the test list, in its order: annotated ones as annotated, the others normal (no anomalous
    frame). An annotated video missing from the list is an error (the list defines the test set)."""
    names = read_test_list(list_path)
    extra = sorted(set(gt) - set(names))
    if extra:
        raise ValueError(f"{len(extra)} annotated video(s) are not in {list_path}, e.g. {extra[:3]}")
    return {n: gt[n] if n in gt else GtVideo(n, False, label="Normal") for n in names}


def load_ground_truth(
    path: str | Path, frame_counts: str | Path | None = None, test_list: str | Path | None = None
) -> dict[str, GtVideo]:
    """A raw database (.json) or a temporal annotation txt (any other suffix); optionally with the frame counts
    of a frame-count list and the normal videos of a test list."""
    path = Path(path)
    gt = gt_from_raw_database(path) if path.suffix.lower() == ".json" else parse_temporal_txt(path)
    if frame_counts is not None:
        gt = with_frame_counts(gt, frame_counts)
    if test_list is not None:
        gt = with_test_list(gt, test_list)
    return gt
