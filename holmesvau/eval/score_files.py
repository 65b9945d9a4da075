"""Dense anomaly-score files: what prediction writes (`--scores-dir`) and detection evaluation reads.

One file per video in a folder (or its subfolders), named after the video without its extension
(`Abuse028_x264.npz`; matched to the annotations by that name). Prediction names it after the video's path
relative to the video root (`score_file`: `ucf/camA/0001.mp4` -> `ucf/camA/0001.npz`, so equal file names in two
folders never share a file) and writes it atomically, so a file that exists is complete.
- `.npz` (preferred) with `scores` (T,) float — one score per snippet; optional `frame_indices` (T,) int — the first
  frame each score covers (default i * stride); `stride` int — frames per snippet (16 for the ATS scorer's
  features); `fps` float; `n_frames` int — frames in the video.
- `.json` with the same keys (lists and numbers).
- `.npy`: the scores (T,) only; stride then comes from the caller (`--stride`), n_frames from the annotations.
Score i covers frames [frame_indices[i], frame_indices[i+1]) (the last one up to the end of the video).
`source` is the fingerprint of the scorer, vision encoder and resize that made the scores
(holmesvau.ats.fingerprint): prediction reuses a file only when it records the same one (or none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from holmesvau.eval.ground_truth import video_key
from holmesvau.files import atomic_open, atomic_write_json

SCORE_SUFFIXES = (".npz", ".json", ".npy")


@dataclass
class ScoreFile:
    name: str
    scores: np.ndarray  # (T,) float64
    stride: int | None = None
    frame_indices: np.ndarray | None = None  # (T,) int64
    fps: float | None = None
    n_frames: int | None = None
    source: str | None = None  # what made the scores (holmesvau.ats.fingerprint), when the writer said


def save_scores(
    path: str | Path,
    scores,
    stride: int,
    n_frames: int | None = None,
    fps: float | None = None,
    frame_indices=None,
    source: str | None = None,
) -> Path:
    """Write one video's scores as .npz (or .json when the path says so), atomically; returns the path written. `source`:
    what made them (holmesvau.ats.fingerprint.scores_source), so a later run knows whether it may reuse them."""
    path = Path(path)
    data = {"scores": np.asarray(scores, dtype=np.float32).reshape(-1), "stride": int(stride)}
    if frame_indices is not None:
        data["frame_indices"] = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    for key, value, kind in (("n_frames", n_frames, int), ("fps", fps, float), ("source", source, str)):
        if value is not None:
            data[key] = kind(value)
    if path.suffix == ".json":
        data = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in data.items()}
        return atomic_write_json(path, data, indent=None)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    with atomic_open(path, "wb") as f:
        np.savez(f, **data)
    return path


def _scalar(value, kind):
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"expected a single number, got shape {arr.shape}")
    return kind(arr.reshape(()).item())


def load_score_file(path: str | Path) -> ScoreFile:
    """Read one score file; ValueError naming the file when it is malformed."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            data = {"scores": np.load(path, allow_pickle=False)}
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        elif path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
        else:
            raise ValueError(
                f"unknown score file type {path.suffix!r} (expected {', '.join(SCORE_SUFFIXES)})"
            )
        if "scores" not in data:
            raise ValueError("no `scores` entry")
        scores = np.asarray(data["scores"], dtype=np.float64)
        if scores.ndim == 2 and 1 in scores.shape:
            scores = scores.reshape(-1)
        if scores.ndim != 1 or scores.size == 0:
            raise ValueError(f"`scores` must be a non-empty 1-D array, got shape {scores.shape}")
        if not np.all(np.isfinite(scores)):
            raise ValueError("`scores` contains NaN or inf")
        fi = data.get("frame_indices")
        if fi is not None:
            fi = np.asarray(fi).reshape(-1)
            if fi.size != scores.size or not np.issubdtype(fi.dtype, np.integer):
                raise ValueError(f"`frame_indices` must be {scores.size} integers")
            fi = fi.astype(np.int64)
        stride = _scalar(data.get("stride"), int)
        if stride is not None and stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        fps, n_frames, source = (
            _scalar(data.get(k), kind) for k, kind in (("fps", float), ("n_frames", int), ("source", str))
        )
        return ScoreFile(video_key(path.name[: -len(path.suffix)]), scores, stride, fi, fps, n_frames, source)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"bad score file {path}: {e}") from e


def load_score_dir(folder: str | Path) -> tuple[dict[str, ScoreFile], dict[str, str]]:
    """All score files under a folder, subfolders included (hidden ones skipped) -> ({video: ScoreFile},
    {file relative to the folder: error} for the unreadable ones and for a second file of the same video)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"score folder not found: {folder}")
    files, where, bad = {}, {}, {}
    paths = (
        p for p in folder.rglob("*") if not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for path in sorted(paths):
        if path.suffix not in SCORE_SUFFIXES or not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        try:
            sf = load_score_file(path)
        except ValueError as e:
            bad[rel] = str(e)
            continue
        if sf.name in files:
            bad[rel] = f"duplicate scores for {sf.name} (kept {where[sf.name]})"
            continue
        files[sf.name], where[sf.name] = sf, rel
    return files, bad


def score_file(scores_dir: str | Path, video: str | Path) -> Path:
    """Score file of a row's video: its path relative to the video root, folders kept, extension `.npz`
    (`camA/0001.mp4` -> SCORES_DIR/camA/0001.npz), so videos with one file name in two folders never share a
    file. Detection evaluation reads the folder recursively and matches files by name (holmesvau.eval)."""
    rel = PurePosixPath(str(video).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.name.startswith("."):
        raise ValueError(
            f"{video}: score files are named after the video's path relative to the video root; "
            "expected a relative path without '..'"
        )
    return Path(scores_dir, *rel.parent.parts, f"{video_key(rel.name)}.npz")


def save_dense_scores(scores_dir: str | Path, video: str | Path, dense, source: str | None = None) -> Path:
    """Write one video's dense scores (holmesvau.pipeline.DenseScores) to its `score_file`, with the fingerprint
    `source` of what made them (HolmesVAU.scores_source)."""
    info, path = dense.info, score_file(scores_dir, video)
    return save_scores(
        path, dense.scores, dense.stride, info.num_frames, info.fps, dense.frame_indices, source
    )


def check_source(path: Path, source: str | None) -> None:
    """Refuse to count a score file made by another scorer, encoder or resize as this run's (it is kept)."""
    saved = load_score_file(path).source
    if saved is not None and source is not None and saved != source:
        raise ValueError(
            f"{path} holds scores of another scorer, encoder or resize ({saved}; this run: {source}); it is kept "
            "as it is: pass a fresh --scores-dir, or move the file away, to score this video with this run"
        )
