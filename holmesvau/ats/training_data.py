"""Training data for the anomaly scorer: feature files + event boundaries -> snippet labels, batches.

Snippet labels. Snippet i (taken at frame f = frame_indices[i]) covers the frames [f, f + stride), the span the
evaluation gives its score (holmesvau.eval.detection.expand_scores). Its label comes from the annotation's frame
labels (RawVideo.frame_labels()) by a rule: "majority" (default: anomalous when at least half of the covered
frames are; the label that minimises frame errors once the score is spread over them), "any" (when any covered
frame is: recall-leaning) or "center" (the middle covered frame's). A snippet past the annotation's last frame
(the decoded video can be a frame or two longer) takes the last frame's label.

Fixed length. Every training video becomes `length` (default 200) snippets, as in UR-DMU: the T snippets are
cut into `length` equal bins; a bin's feature is the mean of its snippets ("mean") or one random snippet of it
("random", an augmentation), and its label the mean of its snippet labels (a soft BCE target). A video shorter
than `length` repeats snippets (nearest-neighbour upsampling), so the (mask-free) scorer needs no padding mask.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holmesvau.ats.features import FeatureFileError, load_features

LABEL_RULES = ("majority", "any", "center")
POOLING = ("mean", "random")


def snippet_labels(frame_labels, frame_indices, stride: int = 16, rule: str = "majority") -> np.ndarray:
    """(T,) float32 0/1 labels of snippets starting at frame_indices and covering `stride` frames each."""
    if rule not in LABEL_RULES:
        raise ValueError(f"label rule must be one of {LABEL_RULES}, got {rule!r}")
    lab = np.asarray(frame_labels, dtype=np.int64).reshape(-1)
    n = lab.size
    if n == 0:
        raise ValueError("no frame labels")
    start = np.clip(np.asarray(frame_indices, dtype=np.int64).reshape(-1), 0, n - 1)
    stop = np.minimum(start + stride, n)  # > start: start <= n - 1
    if rule == "center":
        return lab[start + (stop - start - 1) // 2].astype(np.float32)
    csum = np.concatenate([[0], np.cumsum(lab)])
    count = csum[stop] - csum[start]
    if rule == "any":
        return (count > 0).astype(np.float32)
    return (2 * count >= stop - start).astype(np.float32)


def fixed_length(
    features: np.ndarray, labels: np.ndarray, length: int, pooling: str = "mean", rng=None
) -> tuple[np.ndarray, np.ndarray]:
    """(length, D) features and (length,) soft labels from (T, D) / (T,) — see the module docstring."""
    if pooling not in POOLING:
        raise ValueError(f"pooling must be one of {POOLING}, got {pooling!r}")
    t = features.shape[0]
    bounds = np.linspace(0, t, length + 1).astype(np.int64)
    lo, hi = bounds[:-1], bounds[1:]
    empty = hi <= lo
    hi_eff = np.where(empty, np.minimum(lo, t - 1) + 1, hi)
    lo_eff = np.where(empty, np.minimum(lo, t - 1), lo)
    if pooling == "random":
        rng = rng if rng is not None else np.random.default_rng()
        pick = lo_eff + (rng.random(length) * (hi_eff - lo_eff)).astype(np.int64)
        return features[pick].astype(np.float32), labels[pick].astype(np.float32)
    fsum = np.concatenate([np.zeros((1, features.shape[1])), np.cumsum(features, 0, dtype=np.float64)])
    lsum = np.concatenate([[0.0], np.cumsum(labels, dtype=np.float64)])
    width = (hi_eff - lo_eff)[:, None]
    feats = (fsum[hi_eff] - fsum[lo_eff]) / width
    labs = (lsum[hi_eff] - lsum[lo_eff]) / width[:, 0]
    return feats.astype(np.float32), labs.astype(np.float32)


def _with_text_defaults(entry: object) -> object:
    """Fill the text fields of a raw-database entry that training does not need (captions, summaries), so that an
    annotation holding only n_frames, fps, label and events passes holmesvau.data.annotations' checks."""
    if not isinstance(entry, dict) or not isinstance(entry.get("events"), list):
        return entry
    events, blank = entry["events"], {"judgement": "", "description": ""}
    out = {"clips": [[ev] for ev in events], **entry}
    clips = out["clips"]
    captions = (
        [[""] * len(g) if isinstance(g, list) else [] for g in clips] if isinstance(clips, list) else None
    )
    defaults = {
        "clips_caption": captions,  # one empty caption per clip
        "events_summary": [""] * len(events),
        "events_summary_split": [dict(blank) for _ in events],
        "video_summary": "",
        "video_summary_split": dict(blank),
    }
    return {**defaults, **out}


def load_event_database(path: str | Path) -> tuple[dict, dict[str, str]]:
    """{name: RawVideo} of an annotation JSON keyed by video name (a HIVAU-70k raw database, or one holding only
    n_frames / fps / label / events per video) and {name: why it was left out} for malformed entries."""
    from holmesvau.data.annotations import read_database_json, validate_raw_video

    data = read_database_json(path)
    videos, bad = {}, {}
    for name, entry in data.items():
        video, problems = validate_raw_video(name, _with_text_defaults(entry))
        if video is None:
            bad[name] = f"{path}: " + "; ".join(str(p) for p in problems if p.severity == "error")
        else:
            videos[name] = video
    return videos, bad


@dataclass
class ScorerVideo:
    name: str
    features: np.ndarray  # (T, D) float32
    labels: np.ndarray  # (T,) float32 snippet labels
    frame_indices: np.ndarray  # (T,) int64
    frame_labels: np.ndarray  # (n_frames,) uint8, from the annotation
    anomalous: bool
    stride: int
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.frame_labels.size)


def load_scorer_videos(
    feature_dir: str | Path, annotations: str | Path, stride: int = 16, label_rule: str = "majority"
) -> tuple[list[ScorerVideo], dict[str, str]]:
    """Pair every annotated video with its feature file -> (videos sorted by name, {name: why it was left out}).

    annotations: see load_event_database. Malformed annotations, videos without a feature file, with an unreadable
    one, or whose features cover more frames than annotated (past one stride of slack: the wrong file) are left
    out and reported. A file's own `stride` wins."""
    feature_dir = Path(feature_dir)
    if not feature_dir.is_dir():
        raise FileNotFoundError(f"feature folder not found: {feature_dir}")
    db, skipped = load_event_database(annotations)
    videos, dim = [], None
    for name in sorted(db):
        raw = db[name]
        path = feature_dir / f"{name}.npz"
        if not path.exists():
            skipped[name] = f"no feature file {path}"
            continue
        try:
            vf = load_features(path)
        except FeatureFileError as e:
            skipped[name] = str(e)
            continue
        step, last = vf.stride or stride, int(vf.frame_indices[-1])
        if last >= raw.n_frames + step:
            skipped[name] = f"{path}: features reach frame {last}, annotation has {raw.n_frames} frames"
            continue
        if dim is None:
            dim = vf.features.shape[1]
        elif vf.features.shape[1] != dim:
            skipped[name] = f"{path}: feature dim {vf.features.shape[1]}, others have {dim}"
            continue
        frame_labels = raw.frame_labels()
        labels = snippet_labels(frame_labels, vf.frame_indices, step, label_rule)
        videos.append(
            ScorerVideo(
                name, vf.features, labels, vf.frame_indices, frame_labels, raw.is_anomalous, step, raw.fps
            )
        )
    extra = sorted(p.stem for p in feature_dir.glob("*.npz") if p.stem not in db)
    if extra:
        warnings.warn(f"{feature_dir}: {len(extra)} feature file(s) without annotation ignored", stacklevel=2)
    return videos, skipped


class BalancedSampler:
    """Batches of `per_class` normal + `per_class` anomalous video indices (normal first, as the scorer's
    training forward expects). Each class is drawn without replacement in reshuffled passes; seeded."""

    def __init__(self, anomalous: list[bool], per_class: int, seed: int = 0):
        self.normal = [i for i, a in enumerate(anomalous) if not a]
        self.abnormal = [i for i, a in enumerate(anomalous) if a]
        if not self.normal or not self.abnormal:
            raise ValueError(
                "training needs both normal and anomalous videos: found "
                f"{len(self.normal)} normal and {len(self.abnormal)} anomalous"
            )
        if per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {per_class}")
        self.per_class = per_class
        self.rng = np.random.default_rng(seed)
        self._queues: dict[str, list[int]] = {"n": [], "a": []}

    def _take(self, key: str, pool: list[int]) -> list[int]:
        queue = self._queues[key]
        while len(queue) < self.per_class:
            queue.extend(self.rng.permutation(pool).tolist())
        out, self._queues[key] = queue[: self.per_class], queue[self.per_class :]
        return out

    def next(self) -> tuple[list[int], list[int]]:
        return self._take("n", self.normal), self._take("a", self.abnormal)


def make_batch(
    videos: list[ScorerVideo], indices: list[int], length: int, pooling: str = "mean", rng=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, length, D) features, (B, length) snippet labels, (B,) video labels."""
    feats, labs = zip(
        *(fixed_length(videos[i].features, videos[i].labels, length, pooling, rng) for i in indices)
    )
    vlab = np.array([float(videos[i].anomalous) for i in indices], dtype=np.float32)
    return np.stack(feats), np.stack(labs), vlab
