"""Anomalous events from a dense anomaly-score curve: smooth, threshold, merge close segments, drop blips.

Pure functions on numbers (no model, no video). Dense score `i` stands for frames `[i * stride, (i + 1) * stride)`
(the ATS plan scores every `stride`-th frame from 0), so an event over scores `a..b` covers frames
`[a * stride, (b + 1) * stride)`, clipped to the video's length, and its times are those frames divided by fps.

Default threshold (`threshold=None`), from the curve itself:
- the scorer is trained as a per-snippet anomaly probability, so 0.5 is its own decision boundary and the floor:
  a curve that never rises above it yields no event, whatever its shape;
- a curve with contrast (smoothed max - min >= `min_contrast`) is split where its two modes separate: Otsu's
  threshold (the cut that maximises the between-class variance of the scores), never below 0.5; this adapts to a
  scorer that runs high on a whole video and to a peak that only reaches 0.6;
- a flat curve (less contrast than that) has no modes to separate: 0.5 alone decides, so a video that is
  anomalous throughout gives one event spanning it, and a calm one gives none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DECISION_BOUNDARY = 0.5


@dataclass(frozen=True)
class Event:
    start_s: float
    end_s: float
    peak_score: float  # max raw (unsmoothed) score inside the event
    start_frame: int  # first frame of the event
    end_frame: int  # one past its last frame (exclusive)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def smooth_scores(scores: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` samples (odd; even is rounded up), edges padded with the end value
    so a curve that is high at the start or end stays high there."""
    x = np.asarray(scores, dtype=np.float64)
    if window <= 1 or x.size == 0:
        return x.copy()
    half = int(window) // 2
    padded = np.pad(x, half, mode="edge")
    kernel = np.full(2 * half + 1, 1.0 / (2 * half + 1))
    return np.convolve(padded, kernel, mode="valid")


def otsu_threshold(values: Sequence[float] | np.ndarray) -> float:
    """The cut between two groups of values that maximises their between-class variance (midpoint of the two
    neighbouring values where the cut falls). Needs at least two distinct values."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n = v.size
    if n < 2 or v[0] == v[-1]:
        raise ValueError("Otsu's threshold needs at least two distinct values")
    csum = np.cumsum(v)
    k = np.arange(1, n)  # cut after k values: low group v[:k], high group v[k:]
    mu_lo = csum[:-1] / k
    mu_hi = (csum[-1] - csum[:-1]) / (n - k)
    between = k * (n - k) * (mu_hi - mu_lo) ** 2
    between[v[1:] == v[:-1]] = -1.0  # a cut must fall between distinct values
    best = int(np.argmax(between))
    return float((v[best] + v[best + 1]) / 2)


def default_threshold(smoothed: Sequence[float] | np.ndarray, min_contrast: float = 0.2) -> float:
    """The default threshold described in the module docstring, for an already smoothed curve."""
    s = np.asarray(smoothed, dtype=np.float64)
    if s.size < 2 or float(s.max() - s.min()) < min_contrast:
        return DECISION_BOUNDARY
    return max(DECISION_BOUNDARY, otsu_threshold(s))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index pairs of the True runs of a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def localize_events(
    scores: Sequence[float] | np.ndarray,
    stride: int,
    fps: float,
    threshold: float | None = None,
    min_duration_s: float = 1.0,
    merge_gap_s: float = 2.0,
    smooth: int = 3,
    n_frames: int | None = None,
    min_contrast: float = 0.2,
) -> list[Event]:
    """Events where the (smoothed) dense anomaly score is at or above `threshold`.

    scores: one score per dense sample (sample i = frames [i*stride, (i+1)*stride)). stride, fps: of the dense plan
    and the video. threshold: None = the default rule of the module docstring. smooth: moving-average window in
    dense samples (1 = none). Segments separated by a gap of at most `merge_gap_s` seconds are merged, then events
    shorter than `min_duration_s` seconds are dropped. n_frames: the video's length, to clip the last event's end.
    Returns events in time order; empty when nothing qualifies.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if s.size and not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    if min_duration_s < 0 or merge_gap_s < 0:
        raise ValueError("min_duration_s and merge_gap_s must be >= 0")
    if s.size == 0:
        return []
    total = n_frames if n_frames is not None else s.size * stride
    sm = smooth_scores(s, smooth)
    thr = default_threshold(sm, min_contrast) if threshold is None else float(threshold)

    # Frame ranges [start, end) of the runs above threshold, then merge close ones.
    segments: list[list[int]] = []
    for a, b in _runs(sm >= thr):
        start, end = a * stride, min((b + 1) * stride, total)
        if end <= start:
            continue
        if segments and (start - segments[-1][1]) / fps <= merge_gap_s:
            segments[-1][1] = end
        else:
            segments.append([start, end])

    events = []
    for start, end in segments:
        if (end - start) / fps < min_duration_s:
            continue
        lo, hi = start // stride, -(-end // stride)  # dense samples overlapping [start, end)
        events.append(Event(start / fps, end / fps, float(s[lo:hi].max()), int(start), int(end)))
    return events


def resolved_threshold(
    scores, threshold: float | None = None, smooth: int = 3, min_contrast: float = 0.2
) -> float:
    """The threshold `localize_events` uses for these arguments (to report and draw it)."""
    if threshold is not None:
        return float(threshold)
    return default_threshold(smooth_scores(scores, smooth), min_contrast)
