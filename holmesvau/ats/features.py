"""Dense InternViT CLS features of whole videos, one `.npz` per video: the anomaly scorer's training input.

A feature file `FEATDIR/<video name without extension>.npz` holds `features` (T, D) float32 (the CLS token of
every `stride`-th frame, through the same streaming front end as inference: holmesvau.ats.extract_dense_features),
`frame_indices` (T,) int64, `fps` (float), and `n_frames` / `stride` (ints) so labels can be mapped without
the video. Files are written all or nothing (holmesvau.files), so a file that exists is complete: an
interrupted run resumes by skipping the videos whose file exists. A video that cannot be read is recorded in
`FEATDIR/failures.jsonl` (holmesvau.jsonl: whole lines even from concurrent ranks) and the run goes on.
With torchrun, every rank takes its share of the sorted list (holmesvau.distributed.shard): no file is written twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from holmesvau.distributed import shard
from holmesvau.eval.ground_truth import VIDEO_EXTS, video_key
from holmesvau.files import atomic_open
from holmesvau.jsonl import append_jsonl, read_jsonl

FAILURES_FILE = "failures.jsonl"


class FeatureFileError(ValueError):
    """A feature file that is missing, unreadable or inconsistent; the message names the file."""


@dataclass
class VideoFeatures:
    name: str
    features: np.ndarray  # (T, D) float32
    frame_indices: np.ndarray  # (T,) int64
    fps: float
    n_frames: int | None = None  # the decoded video's frame count (None in files written elsewhere)
    stride: int | None = None


def feature_path(out_dir: str | Path, video: str | Path) -> Path:
    return Path(out_dir) / f"{video_key(str(video))}.npz"


def save_features(
    path: str | Path,
    features,
    frame_indices,
    fps: float,
    n_frames: int | None = None,
    stride: int | None = None,
) -> Path:
    """Write one feature file all or nothing (holmesvau.files)."""
    feats = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    idx = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if feats.ndim != 2 or feats.shape[0] != idx.shape[0]:
        raise ValueError(f"{path}: features {feats.shape} do not match {idx.shape[0]} frame indices")
    arrays = {"features": feats, "frame_indices": idx, "fps": np.float64(fps)}
    if n_frames is not None:
        arrays["n_frames"] = np.int64(n_frames)
    if stride is not None:
        arrays["stride"] = np.int64(stride)
    with atomic_open(path, "wb") as f:  # a file object: np.savez adds no suffix
        np.savez(f, **arrays)
    return Path(path)


def load_features(path: str | Path) -> VideoFeatures:
    """Read and check one feature file (FeatureFileError naming the file when it is not a valid one)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("features", "frame_indices", "fps") if k not in z.files]
            if missing:
                raise FeatureFileError(f"{path}: missing array(s) {', '.join(missing)}")
            feats = np.asarray(z["features"], dtype=np.float32)
            idx = np.asarray(z["frame_indices"], dtype=np.int64).reshape(-1)
            fps = float(z["fps"])
            n_frames = int(z["n_frames"]) if "n_frames" in z.files else None
            stride = int(z["stride"]) if "stride" in z.files else None
    except FeatureFileError:
        raise
    except FileNotFoundError:
        raise FeatureFileError(f"{path}: no such feature file") from None
    except Exception as e:  # truncated zip, not an npz, pickled objects ...
        raise FeatureFileError(f"{path}: not a readable feature file ({type(e).__name__}: {e})") from e
    if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[0] != idx.shape[0]:
        raise FeatureFileError(f"{path}: features {feats.shape} and frame_indices {idx.shape} do not match")
    if np.any(np.diff(idx) <= 0) or not np.isfinite(feats).all():
        raise FeatureFileError(f"{path}: frame_indices not increasing or features not finite")
    return VideoFeatures(path.stem, feats, idx, fps, n_frames, stride)


def _index_videos(root: Path) -> dict[str, Path]:
    """stem -> path of every video file under root (first in sorted order wins)."""
    found: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in VIDEO_EXTS and p.is_file():
            found.setdefault(video_key(p.name), p)
    return found


def videos_from_list(list_path: str | Path, video_root: str | Path = ".") -> list[Path]:
    """One video path a line (relative to video_root, or absolute); blank lines and '#' comments skipped."""
    lines = (line.strip() for line in Path(list_path).read_text(encoding="utf-8").splitlines())
    return [Path(video_root) / line for line in lines if line and not line.startswith("#")]


def videos_from_annotations(path: str | Path, video_root: str | Path = ".") -> list[Path]:
    """Whole videos named by a raw annotation database (.json: keys are names without extension, found by name
    anywhere under video_root) or an instruction file (.jsonl: the `video` paths of the video-level rows, relative
    to video_root; all rows when there are none). A name without a file is returned as root/<name>.mp4 (recorded
    as a failure later)."""
    path, root = Path(path), Path(video_root)
    if path.suffix == ".jsonl":
        rows, problems = read_jsonl(path)
        if problems:  # the list of videos must be complete: a malformed line is an error here
            raise ValueError(f"malformed line {problems[0]}")
        level = [r for r in rows if isinstance(r, dict) and r.get("type") == "video"] or rows
        names = [r["video"] for r in level if isinstance(r, dict) and isinstance(r.get("video"), str)]
        return [root / v for v in dict.fromkeys(names)]
    try:  # only the names are needed: a malformed entry still names a video
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a raw annotation database (an object keyed by video name)")
    index = _index_videos(root)
    return [index.get(n, root / f"{n}.mp4") for n in sorted(data)]


@dataclass
class ExtractionReport:
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # file already there (resume)
    failed: list[dict] = field(default_factory=list)
    rank: int = 0
    world_size: int = 1
    seconds: float = 0.0

    def to_dict(self) -> dict:
        counts = {k: len(getattr(self, k)) for k in ("extracted", "skipped", "failed")}
        return {"rank": self.rank, "world_size": self.world_size, **counts, "failures": self.failed,
                "seconds": round(self.seconds, 3)}  # fmt: skip


def record_failure(out_dir: Path, video: Path, reason: str, rank: int = 0) -> dict:
    rec = dict(video=str(video), name=video_key(str(video)), reason=reason, rank=rank, time=time.time())
    append_jsonl(out_dir / FAILURES_FILE, rec)
    return rec


def extract_to_dir(
    videos: Iterable[str | Path],
    encode_fn: Callable,
    out_dir: str | Path,
    stride: int = 16,
    batch_size: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> ExtractionReport:
    """Extract this rank's share of `videos` into out_dir; skips done videos, records failures, never raises for a
    bad video. encode_fn: pixel values (N,3,448,448) -> (N, D) CLS features (holmesvau.model.vit_encoder, whose
    device the uint8 tiles are normalised on); batch_size None: the encoder's (64 on a GPU, 16 on the CPU)."""
    from tqdm import tqdm

    from holmesvau.ats.streaming import extract_dense_features

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ExtractionReport(rank=rank, world_size=world_size)
    seen: dict[str, Path] = {}  # output name -> video: unique over the whole list, not only this shard
    for v in sorted(dict.fromkeys(Path(v) for v in videos)):
        name = video_key(str(v))
        if name not in seen:
            seen[name] = v
        elif rank == 0:  # every rank sees the same list; one records it
            report.failed.append(record_failure(out_dir, v, f"same output name as {seen[name]}", rank))
    mine = shard(list(seen.values()), rank, world_size)
    t0 = time.perf_counter()
    bar = tqdm(mine, desc=f"features[{rank}/{world_size}]", unit="video", disable=not progress)
    for video in bar:
        target = feature_path(out_dir, video)
        if target.exists():
            report.skipped.append(video_key(str(video)))
            continue
        try:
            dense = extract_dense_features(
                video, encode_fn, stride=stride, batch_size=batch_size, progress=False
            )
            feats = dense.features.numpy()  # (T, D) float32 on the CPU
            save_features(target, feats, dense.frame_indices, dense.info.fps, dense.info.num_frames, stride)
        except Exception as e:  # a bad video must not stop the batch: record it and go on
            report.failed.append(record_failure(out_dir, video, f"{type(e).__name__}: {e}", rank))
            continue
        report.extracted.append(target.stem)
        bar.set_postfix(done=len(report.extracted), failed=len(report.failed))
    report.seconds = time.perf_counter() - t0
    return report
