"""Which frames the report asks about, and how the levels share them so each frame is encoded once.

Every sampled frame stands for a stretch of video: a uniformly sampled frame (`sample_inside`, the middle of one of
n equal segments, as InternVL's `get_index`) for its segment, an ATS-sampled frame d for its dense snippet
[d, d + stride) (the one anomaly score that drew it covers the whole snippet). Where two such stretches overlap,
one frame inside both serves both: the video-level questions and a clip caption then encode it once.
`share_with_ats` makes that choice; an event's own frames are taken evenly from its clips' frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def sample_inside(start: int, end: int, n: int) -> list[int]:
    """`n` frame indices spread uniformly (segment middles) over frames [start, end); fewer if it is shorter."""
    from holmesvau.video import uniform_indices

    length = end - start
    if length <= 0:
        raise ValueError(f"empty frame range [{start}, {end})")
    return [start + i for i in uniform_indices(length, max(1, min(n, length)))]


def segment_bounds(start: int, end: int, n: int) -> list[tuple[int, int]]:
    """The [lo, hi) segment of [start, end) that each frame of `sample_inside(start, end, n)` is the middle of."""
    k = max(1, min(n, end - start))
    seg = (end - start - 1) / k
    cuts = [start + round(seg * i) for i in range(k)] + [end]
    return list(zip(cuts[:-1], cuts[1:]))


def split_clips(
    start: int, end: int, fps: float, clip_seconds: float, max_clips: int
) -> list[tuple[int, int]]:
    """Cut frames [start, end) into ceil(duration / clip_seconds) (at most `max_clips`) near-equal clips."""
    n = max(1, min(max_clips, math.ceil((end - start) / fps / clip_seconds - 1e-9)))
    n = min(n, end - start)
    bounds = [start + round(k * (end - start) / n) for k in range(n + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


@dataclass
class Uniform:
    """Frames sampled uniformly over [start, end): `frames[i]` stands for `segment_bounds(...)[i]`."""

    start: int
    end: int
    frames: list[int]

    @classmethod
    def over(cls, start: int, end: int, n: int) -> Uniform:
        return cls(start, end, sample_inside(start, end, n))


@dataclass
class EventFrames:
    """One event's clips, and its own frames: drawn evenly from the clips' frames when those are enough
    (`from_clips`, positions into their sorted union), else a uniform set of their own (`own`)."""

    clips: list[Uniform]
    own: Uniform | None
    from_clips: list[int]

    @property
    def frames(self) -> list[int]:
        if self.own is not None:
            return list(self.own.frames)
        pool = sorted({i for c in self.clips for i in c.frames})
        return [pool[k] for k in self.from_clips]


def plan_event(
    start: int, end: int, fps: float, n: int, clip_frames: int, clip_seconds: float, max_clips: int
):
    """The clips of event [start, end) and where its `n` frames come from (see `EventFrames`)."""
    clips = [
        Uniform.over(a, b, clip_frames) for a, b in split_clips(start, end, fps, clip_seconds, max_clips)
    ]
    pool = len({i for c in clips for i in c.frames})
    if pool >= n > 1:
        return EventFrames(clips, None, [round(k * (pool - 1) / (n - 1)) for k in range(n)])
    return EventFrames(clips, Uniform.over(start, end, n), [])


def share_with_ats(ats: Sequence[int], sets: Sequence[Uniform], stride: int) -> list[int]:
    """The video-level frames for ATS-sampled frames `ats`, moving frames of the uniform `sets` in place.

    For ATS frame d, snippet [d, d + stride): (1) the first set frame already inside the snippet, if any (checked
    for every d before anything moves, so no move takes a frame another snippet holds); else (2) an overlapping
    segment whose frame no snippet uses yet gives its frame up: it moves to the first frame of the overlap, which
    both then use; else (3) d itself. Frames only move inside their own segment, so every set stays sorted."""
    segments = []  # (lo, hi, set index, slot)
    for s, u in enumerate(sets):
        for i, (lo, hi) in enumerate(segment_bounds(u.start, u.end, len(u.frames))):
            if lo <= u.frames[i] < hi:  # a degenerate (shorter than n) set keeps its frames where they are
                segments.append((lo, hi, s, i))
    # linear scans: a report has at most a few hundred segments and a dozen ATS frames
    out: list[int | None] = []
    used: set[tuple[int, int]] = set()
    for d in ats:
        inside = [(sets[s].frames[i], s, i) for _, _, s, i in segments if d <= sets[s].frames[i] < d + stride]
        if inside:
            f, s, i = min(inside)
            used.add((s, i))
        out.append(f if inside else None)
    for k, d in enumerate(ats):
        if out[k] is not None:
            continue
        free = [(max(lo, d), s, i) for lo, hi, s, i in segments
                if (s, i) not in used and max(lo, d) < min(hi, d + stride)]  # fmt: skip
        if free:
            f, s, i = min(free)
            sets[s].frames[i] = f
            used.add((s, i))
        out[k] = int(min(free)[0] if free else d)
    return [int(v) for v in out]
