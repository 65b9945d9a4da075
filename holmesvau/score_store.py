"""Dense-score files of a video set: one file per video, named after its path, recording what made the scores.

SCORES_DIR/<video path relative to the video root, without extension>.npz (`ucf/camA/0001.mp4` ->
`ucf/camA/0001.npz`: folders are kept, so equal file names in two folders never share a file), as
holmesvau.eval.score_files writes and detection reads (`scores` (T,) float32, `frame_indices` (T,) int64, `stride`,
`fps`, `n_frames`, `source`); written under a temporary name and renamed, so a file that exists is complete.
`source` is the fingerprint of the scorer, vision encoder and resize that made the scores
(holmesvau.ats.fingerprint): prediction reuses a file only when it fits its plan and, if it records one, its
source; `dump_scores` fails a video whose existing file records another source (and keeps the file).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from holmesvau.frame_plan import SamplingConfig


def score_file(scores_dir: str | Path, video: str | Path) -> Path:
    """Score file of a row's video: its path relative to the video root, folders kept, extension `.npz`
    (`camA/0001.mp4` -> SCORES_DIR/camA/0001.npz), so videos with one file name in two folders never share a
    file. Detection evaluation reads the folder recursively and matches files by name (holmesvau.eval)."""
    from holmesvau.eval.ground_truth import video_key

    rel = PurePosixPath(str(video).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.name.startswith("."):
        raise ValueError(
            f"{video}: score files are named after the video's path relative to the video root; "
            "expected a relative path without '..'"
        )
    return Path(scores_dir, *rel.parent.parts, f"{video_key(rel.name)}.npz")


def save_dense(scores_dir: str | Path, video: str | Path, dense, source: str | None = None) -> Path:
    """Write one video's dense scores atomically, with the fingerprint `source` of what made them
    (HolmesVAU.scores_source)."""
    from holmesvau.eval.score_files import save_scores

    return save_scores(
        score_file(scores_dir, video),
        dense.scores,
        stride=dense.stride,
        n_frames=dense.info.num_frames,
        fps=dense.info.fps,
        frame_indices=dense.frame_indices,
        source=source,
    )


def saved_dense(
    scores_dir: str | Path, video: str | Path, path: str | Path, dense_stride: int, source: str | None = None
):
    """The dense scores of `video` already in SCORES_DIR (holmesvau.pipeline.DenseScores), when they fit this
    run's plan: same stride, same frame count as the video at `path` now, scores at increasing frames inside
    it, and made by the same scorer, encoder and resize when the file records it (`source`; a file without one,
    e.g. written by hand or by another tool, is taken as it is). None when there is no such file or it does not
    fit (stale, other stride, another scorer, unreadable): then the dense pass runs."""
    import numpy as np

    from holmesvau.eval.score_files import load_score_file
    from holmesvau.pipeline import DenseScores
    from holmesvau.video import dense_indices, probe

    f = score_file(scores_dir, video)
    if not f.is_file():
        return None
    try:
        saved = load_score_file(f)
    except ValueError:
        return None
    if saved.source is not None and saved.source != source:
        return None
    info = probe(path)
    n = info.num_frames
    idx = saved.frame_indices
    if idx is None and saved.scores.size == len(dense_indices(n, dense_stride)):
        idx = np.asarray(dense_indices(n, dense_stride), dtype=np.int64)
    if saved.stride != dense_stride or saved.n_frames != n or idx is None:
        return None
    if idx.size and (idx[0] < 0 or idx[-1] >= n or np.any(np.diff(idx) <= 0)):
        return None
    return DenseScores(idx, saved.scores.astype(np.float32), info, int(dense_stride))


def _check_source(path: Path, source: str | None) -> None:
    """Refuse to count a score file made by another scorer, encoder or resize as this run's (it is kept)."""
    from holmesvau.eval.score_files import load_score_file

    saved = load_score_file(path).source
    if saved is not None and source is not None and saved != source:
        raise ValueError(
            f"{path} holds scores of another scorer, encoder or resize ({saved}; this run: {source}); it is kept "
            "as it is: pass a fresh --scores-dir, or move the file away, to score this video with this run"
        )


def dump_scores(
    vau,
    videos: Sequence[str],
    video_root: str | Path,
    scores_dir: str | Path,
    log: str | Path,
    dense_stride: int = SamplingConfig.dense_stride,
    progress: bool = True,
    desc: str = "scores",
    skip_ids: Iterable[object] = (),
) -> dict:
    """Dense anomaly scores of each video -> `scores_dir/<stem>.npz`; one log line per video in `log`
    ({"id": video, "video", "scores_file", "n_scores", "status", "error"}); existing files are kept (one that
    records another scorer, encoder or resize fails its video, with the reason)."""
    from tqdm.auto import tqdm

    from holmesvau.jsonl import JsonlAppender
    from holmesvau.predict import done_ids, key

    if vau.scorer is None:
        raise ValueError("score dumping needs the anomaly scorer (do not pass --no-ats)")
    log = Path(log)
    done = done_ids(log) | {key(i) for i in skip_ids}
    stats = {"total": len(videos), "skipped_done": 0, "ok": 0, "failed": 0}
    with (
        JsonlAppender(log) as f,
        tqdm(total=len(videos), desc=desc, disable=not progress, unit="video") as bar,
    ):
        for v in videos:
            base = {"id": v, "video": v, "scores_file": None}
            try:
                dst = score_file(scores_dir, v)
                base["scores_file"] = dst.relative_to(scores_dir).as_posix()
                if dst.is_file() and key(v) not in done:
                    _check_source(dst, getattr(vau, "scores_source", None))
                if key(v) in done or dst.is_file():
                    stats["skipped_done"] += 1
                    if key(v) not in done:
                        f.write({**base, "n_scores": None, "status": "ok", "error": None})
                    bar.update(1)
                    continue
                dense = vau.dense_scores(Path(video_root) / v, dense_stride, progress=False)
                save_dense(scores_dir, v, dense, getattr(vau, "scores_source", None))
                out = {**base, "n_scores": int(dense.scores.size), "status": "ok", "error": None}
                stats["ok"] += 1
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                out = {**base, "n_scores": None, "status": "failed", "error": f"{type(e).__name__}: {e}"}
                stats["failed"] += 1
                bar.write(f"failed {v}: {out['error']}", file=sys.stderr)
            f.write(out)
            bar.update(1)
    return stats
