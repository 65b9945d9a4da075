"""Which frames of a video the MLLM sees: one sampling config and one pure function, used by the pipeline, batch
prediction, the report, live mode and reproduction.

    sampling = SamplingConfig(select_frames=12)           # every sampling option, with its one default
    plan = plan_frames(num_frames=2730, sampling=sampling, scores=dense.scores, dense_indices=dense.frame_indices)
    plan.indices, plan.sampling          # (12 frame indices into the video), "ats"

The rule is the original's:
- explicit indices (`sampling.frame_indices`) are used as given ("given"): integers in [0, num_frames), repeats and
  any order allowed;
- otherwise ATS ("ats") when it is enabled, a scorer is available (`scores` is not None) and the video has more
  than `dense_stride * select_frames` frames: density-aware sampling of the dense anomaly curve
  (holmesvau.ats.sampler), positions mapped to the dense frames' indices;
- otherwise uniform ("uniform"): the middles of `select_frames` equal segments (frames repeat in a video shorter
  than `select_frames`, as the original's).

`needs_dense_scores` says whether a caller must compute dense scores before planning (so nobody scores a video
that will be sampled uniformly or asked about explicit frames).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLINGS = ("ats", "uniform", "given")


class FramePlanError(ValueError):
    """Arguments that cannot make a frame plan (the message says which)."""


class FrameIndexError(FramePlanError):
    """An explicit frame index outside the video."""


def _check_count(name: str, v: object) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise FramePlanError(f"{name} must be an integer >= 1, got {v!r}")


@dataclass(frozen=True)
class SamplingConfig:
    """Every option of frame sampling, made once (holmesvau.cli.sampling_config for the command lines) and passed
    whole through plan / analyze / predict / report / live / reproduce. These are the defaults, the only ones."""

    select_frames: int = 12  # frames the MLLM sees
    use_ats: bool = True  # anomaly-focused sampling when a scorer is loaded and the video is long enough
    dense_stride: int = 16  # ATS scores every dense_stride-th frame
    tau: float = 0.1  # ATS density offset: cumsum of (score + tau)
    frame_indices: tuple[int, ...] | None = None  # explicit frames: no sampling

    def __post_init__(self):
        _check_count("select_frames", self.select_frames)
        _check_count("dense_stride", self.dense_stride)
        tau = self.tau
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau < 0:
            raise FramePlanError(f"tau must be a finite number >= 0, got {tau!r}")
        if self.frame_indices is not None:  # a list from a caller or argparse: kept hashable and unchanging
            object.__setattr__(self, "frame_indices", tuple(self.frame_indices))


@dataclass(frozen=True)
class FramePlan:
    indices: tuple[int, ...]  # frame indices into the video, in the order the MLLM sees them
    sampling: str  # "ats" | "uniform" | "given"
    num_frames: int  # frames in the video

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise FramePlanError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")


def ats_eligible(num_frames: int, sampling: SamplingConfig, has_scorer: bool = True) -> bool:
    """The original's rule for when ATS samples (see the module docstring)."""
    _check_count("num_frames", num_frames)
    return bool(
        sampling.use_ats and has_scorer and num_frames > sampling.dense_stride * sampling.select_frames
    )


def needs_dense_scores(num_frames: int, sampling: SamplingConfig, has_scorer: bool = True) -> bool:
    """True when `plan_frames` will sample with ATS, i.e. the caller must compute the dense scores first."""
    return sampling.frame_indices is None and ats_eligible(num_frames, sampling, has_scorer)


def _explicit(indices: Sequence[int], num_frames: int) -> tuple[int, ...]:
    out = []
    for i in indices:
        number = not isinstance(i, bool) and isinstance(i, (int, float, np.integer, np.floating))
        if not number or not float(i).is_integer():
            raise FramePlanError(f"frame indices must be integers, got {i!r}")
        out.append(int(i))
    if not out:
        raise FramePlanError("frame_indices is empty")
    bad = [i for i in out if not 0 <= i < num_frames]
    if bad:
        raise FrameIndexError(f"frame index {bad[0]} out of range (video has {num_frames} frames)")
    return tuple(out)


def plan_frames(
    num_frames: int,
    sampling: SamplingConfig,
    scores: Sequence[float] | np.ndarray | None = None,
    dense_indices: Sequence[int] | np.ndarray | None = None,
) -> FramePlan:
    """The frames to show the MLLM (see the module docstring). `scores`: the dense anomaly scores (None: no
    scorer); `dense_indices`: the video frame of each score (default every `dense_stride`-th frame)."""
    _check_count("num_frames", num_frames)
    if sampling.frame_indices is not None:
        return FramePlan(_explicit(sampling.frame_indices, num_frames), "given", int(num_frames))
    if ats_eligible(num_frames, sampling, scores is not None):
        from holmesvau.ats.sampler import density_aware_sample

        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if dense_indices is None:
            dense_indices = np.arange(0, num_frames, sampling.dense_stride)
        d = np.asarray(dense_indices).reshape(-1)
        if d.size != s.size:
            raise FramePlanError(f"{s.size} dense scores for {d.size} dense frames")
        if d.size and (d.min() < 0 or d.max() >= num_frames):
            raise FramePlanError(f"dense frame indices outside the video's {num_frames} frames")
        positions = density_aware_sample(s, sampling.select_frames, sampling.tau)
        return FramePlan(tuple(int(d[p]) for p in positions), "ats", int(num_frames))
    from holmesvau.video import uniform_indices

    indices = uniform_indices(int(num_frames), sampling.select_frames)
    return FramePlan(tuple(indices), "uniform", int(num_frames))


SHOWN_FRAMES = 12  # decoded frames an AnalysisResult keeps for display (bounds its memory)


def shown_positions(n: int, most: int = SHOWN_FRAMES) -> list[int]:
    """Positions of the frames kept for display out of `n` sampled: all up to `most`, else `most` evenly spread."""
    if n <= most:
        return list(range(n))
    return sorted({int(round(p)) for p in np.linspace(0, n - 1, most)})
