"""Pictures of an analysis: the anomaly curve with the sampled frames marked, and a strip of those frames.

Plain matplotlib `Figure` objects (no pyplot state, no display needed: saved with Agg; shown inline in notebooks).
Works from an `AnalysisResult`, its `to_dict()` (e.g. the JSON that `inference.py --output` writes) or plain arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from holmesvau.files import atomic_target


def _fields(result_or_arrays, fps: float | None):
    """-> (dense frame indices or None, dense scores or None, sampled frame indices, fps, n_frames, video path)."""
    if isinstance(result_or_arrays, (tuple, list)):
        dense_idx, scores, *rest = result_or_arrays
        sampled = list(rest[0]) if rest else []
        return dense_idx, scores, sampled, fps or 0.0, None, None
    d = result_or_arrays if isinstance(result_or_arrays, dict) else result_or_arrays.to_dict()
    video = d.get("video") or {}
    dense = d.get("dense_frame_indices"), d.get("dense_scores")
    sampled = list(d.get("frame_indices") or [])
    return *dense, sampled, fps or float(video.get("fps") or 0.0), video.get("num_frames"), video.get("path")


def _strip_frames(frames, result, sampled: Sequence[int], path: str | None):
    """The strip as [(position in `sampled`, image)]: `frames` given (one per sampled frame), else the frames the
    analysis already decoded (AnalysisResult.frames), else read from the video (a JSON result); None: no strip."""
    from holmesvau.frame_plan import shown_positions

    if frames is False or not sampled:
        return None
    if frames is not None:
        return list(enumerate(np.asarray(frames)))
    own = getattr(result, "frames", None)
    if own:
        return sorted(own.items())
    if not path or not Path(path).is_file():
        return None
    from holmesvau.video import read_frames
    from holmesvau.video_open import VideoError

    positions = shown_positions(len(sampled))
    try:
        return list(zip(positions, read_frames(path, [sampled[p] for p in positions])))
    except (VideoError, ValueError):
        return None


def anomaly_figure(result_or_arrays, frames=None, fps: float | None = None, title: str | None = None):
    """A matplotlib Figure: score vs time (sampled frames marked) above a strip of the sampled frames."""
    from matplotlib.figure import Figure

    dense_idx, scores, sampled, fps, n_frames, path = _fields(result_or_arrays, fps)
    unit, scale = ("s", 1.0 / fps) if fps and fps > 0 else ("frame", 1.0)
    thumbs = _strip_frames(frames, result_or_arrays, sampled, path)
    rows = 2 if thumbs else 1
    cols = len(thumbs) if thumbs else max(len(sampled), 1)
    fig = Figure(figsize=(max(8.0, 1.3 * min(cols, 12)), 3.2 + (1.6 if rows == 2 else 0.0)))
    grid = fig.add_gridspec(rows, cols, height_ratios=[2.2, 1.0][:rows], hspace=0.35)
    ax = fig.add_subplot(grid[0, :])
    if scores is not None and dense_idx is not None and len(scores):
        x = np.asarray(dense_idx, dtype=np.float64) * scale
        y = np.asarray(scores, dtype=np.float64)
        ax.plot(x, y, color="tab:red", lw=1.5, label="anomaly score")
        ax.fill_between(x, 0, y, color="tab:red", alpha=0.15)
        ys = np.interp(np.asarray(sampled, dtype=np.float64) * scale, x, y) if sampled else []
        ax.scatter(np.asarray(sampled) * scale, ys, color="tab:blue", zorder=3, s=25, label="sampled frames")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("anomaly score")
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.set_yticks([])
        note = "no anomaly scores (uniform / given frames)"
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", color="gray")
    above = {"xycoords": ("data", "axes fraction"), "ha": "center", "va": "bottom", "fontsize": 7}
    for i, f in enumerate(sampled):
        ax.axvline(f * scale, color="tab:blue", alpha=0.35, lw=1)
        ax.annotate(str(i + 1), (f * scale, 1.0), **above)
    latest = max([*sampled, *(dense_idx if dense_idx is not None else [])], default=1)
    last = n_frames - 1 if n_frames else latest
    ax.set_xlim(0, max(last * scale, 1e-6))
    ax.set_xlabel(f"time ({unit})")
    if title:
        ax.set_title(title, fontsize=10)
    for k, (i, img) in enumerate(thumbs or []):
        f = sampled[i]
        a = fig.add_subplot(grid[1, k])
        a.imshow(img)
        a.set_axis_off()
        a.set_title(f"{i + 1}: {f * scale:.1f}{unit}" if unit == "s" else f"{i + 1}: #{f}", fontsize=7)
    return fig


def save_anomaly_curve(
    result_or_arrays, out_png: str | Path, frames=None, fps: float | None = None, title: str | None = None
) -> Path:
    """Save the anomaly curve (+ frame strip) to `out_png`. `result_or_arrays`: AnalysisResult, its dict, or
    (dense_frame_indices, scores[, sampled_frame_indices]). `frames`: thumbnails (N, H, W, 3) uint8; None takes the
    frames the analysis decoded (AnalysisResult.frames), else reads them from the result's video when it exists;
    False leaves the strip out."""
    fig = anomaly_figure(result_or_arrays, frames=frames, fps=fps, title=title)
    # the marker lets a rerun tell its own plot from a user's image (holmesvau.output_guard)
    with atomic_target(out_png, keep_suffix=True) as tmp:  # savefig picks the format from the suffix
        fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": "HolmesVAU anomaly curve"})
    return Path(out_png)
