"""Density-aware sampling: pick `num_frames` positions of a dense anomaly curve, denser where scores are high.

The original algorithm: cumulative sum of (score + tau) with a leading 0, `num_frames` points evenly spaced from 1
to the rounded total, mapped back to positions by linear interpolation (extrapolating past the last point),
floored and clamped to [0, T - 1]. When there are no more scores than frames, or the scores sum below 1, it falls
back to uniform positions (the original returned those as floats; here they are ints).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def uniform_sample(length: int, num: int) -> list[int]:
    """`num` evenly spaced positions in [0, length - 1], rounded half to even: the original fallback, as ints."""
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if num <= 0:
        return []
    return [int(i) for i in np.rint(np.linspace(0, length - 1, num))]


def _interp_extrapolate(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of (xp, fp) at x, extrapolating linearly with the end segments."""
    j = np.clip(np.searchsorted(xp, x, side="left"), 1, len(xp) - 1)
    x0, x1, y0, y1 = xp[j - 1], xp[j], fp[j - 1], fp[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(x1 > x0, (y1 - y0) / (x1 - x0), 0.0)
    return y0 + slope * (x - x0)


def density_aware_sample(
    scores: Sequence[float] | np.ndarray, num_frames: int, tau: float = 0.1
) -> list[int]:
    """`num_frames` sorted positions into `scores` (ints in [0, len(scores) - 1]), denser where scores are high."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("density_aware_sample needs at least one score")
    if not np.all(np.isfinite(s)):
        raise ValueError("anomaly scores must be finite")
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    if num_frames <= 0:
        return []
    t = s.size
    if t <= num_frames or s.sum() < 1:
        return uniform_sample(t, num_frames)
    cumsum = np.concatenate(([0.0], np.cumsum(s + tau)))
    total = int(np.round(cumsum[-1]))
    targets = np.linspace(1, total, num_frames)
    positions = _interp_extrapolate(targets, cumsum, np.arange(t + 1, dtype=np.float64))
    return [min(t - 1, max(0, int(p))) for p in positions]


def ats_select(
    scores: Sequence[float] | np.ndarray, num_frames: int, dense_indices: Sequence[int], tau: float = 0.1
) -> list[int]:
    """Density-aware positions mapped back to frame indices of the video (`dense_indices[i]` for each position)."""
    if len(scores) != len(dense_indices):
        raise ValueError(f"{len(scores)} scores for {len(dense_indices)} dense frames")
    return [int(dense_indices[i]) for i in density_aware_sample(scores, num_frames, tau)]
