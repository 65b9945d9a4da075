"""Frame-level anomaly detection metrics: dense snippet scores -> frame scores -> ROC-AUC / AP (scikit-learn).

AUC and AP are computed over all test frames concatenated (the standard UCF-Crime / XD-Violence protocol), plus the
AUC/AP over the anomalous videos only (normal videos excluded), which shows localisation inside anomalous videos.
AP is scikit-learn's `average_precision_score` (step-wise); `ap_trapezoid` is the trapezoidal area under the PR
curve, `auc(recall, precision)`, which several public XD-Violence evaluators print (it is a little higher).
Every ground-truth video must have scores: `MissingScoresError` otherwise, unless `allow_missing`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from holmesvau.eval.ground_truth import GtVideo, load_ground_truth
from holmesvau.eval.score_files import ScoreFile, load_score_dir


def expand_scores(scores, n_frames: int, stride: int = 16, frame_indices=None) -> np.ndarray:
    """(n_frames,) frame scores from (T,) snippet scores. Score i covers frames [i*stride, (i+1)*stride) — or
    [frame_indices[i], frame_indices[i+1]) when given; frames past the last snippet (a partial or missing last
    snippet) take the last score, frames before the first take the first; extra scores are cut off."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        raise ValueError("no scores")
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if frame_indices is None:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        idx = np.minimum(np.arange(n_frames) // stride, scores.size - 1)
    else:
        fi = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        if fi.size != scores.size or np.any(np.diff(fi) < 0):
            raise ValueError("frame_indices must be non-decreasing and as long as scores")
        idx = np.clip(np.searchsorted(fi, np.arange(n_frames), side="right") - 1, 0, None)
    return scores[idx]


class MissingScoresError(ValueError):
    """Ground-truth videos without scores (the message names how many and the first few)."""


def first_names(names: list[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + (", ..." if len(names) > k else "")


def _auc_ap(gt: np.ndarray, scores: np.ndarray, trapezoid: bool = False) -> tuple[float | None, ...]:
    """(ROC-AUC, AP[, trapezoidal PR area `auc(recall, precision)`]); None when only one class is present."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

    if gt.size == 0 or gt.min() == gt.max():
        return (None,) * (2 + trapezoid)
    out = float(roc_auc_score(gt, scores)), float(average_precision_score(gt, scores))
    if trapezoid:
        precision, recall, _ = precision_recall_curve(gt, scores)
        out += (float(auc(recall, precision)),)
    return out


def evaluate_detection(scores_by_video: dict[str, np.ndarray], gt_by_video: dict[str, np.ndarray]) -> dict:
    """Frame-level metrics over the videos that have both frame scores and frame labels (equal lengths).
    Returns {"auc", "ap", "auc_anomalous_videos", "ap_anomalous_videos", counts, "missing_scores",
    "unmatched_scores", "per_video": {name: {...}}}; a metric is None when only one class is present."""
    names = [n for n in gt_by_video if n in scores_by_video]
    per_video, s_by, g_by = {}, {}, {}
    for n in names:
        s = np.asarray(scores_by_video[n], dtype=np.float64).reshape(-1)
        g = np.asarray(gt_by_video[n]).reshape(-1).astype(np.uint8)
        if s.shape != g.shape:
            raise ValueError(f"{n}: {s.size} frame scores for {g.size} frame labels")
        anomalous = bool(g.any())
        per_video[n] = {
            "anomalous": anomalous,
            "n_frames": int(g.size),
            "auc": _auc_ap(g, s)[0],
            "mean_score": float(s.mean()) if s.size else None,
            "max_score": float(s.max()) if s.size else None,
            "mean_score_anomalous_frames": float(s[g == 1].mean()) if anomalous else None,
        }
        s_by[n], g_by[n] = s, g
    anom = [n for n in names if per_video[n]["anomalous"]]
    cat = lambda by, ns: np.concatenate([by[n] for n in ns]) if ns else np.zeros(0)  # noqa: E731
    frames = cat(g_by, names)
    auc, ap, ap_trapezoid = _auc_ap(frames, cat(s_by, names), trapezoid=True)
    auc_a, ap_a = _auc_ap(cat(g_by, anom), cat(s_by, anom))
    return {
        "auc": auc,
        "ap": ap,
        "ap_trapezoid": ap_trapezoid,
        "auc_anomalous_videos": auc_a,
        "ap_anomalous_videos": ap_a,
        "n_videos": len(names),
        "n_anomalous_videos": len(anom),
        "n_frames": int(frames.size),
        "n_anomalous_frames": int(frames.sum()),
        "missing_scores": sorted(n for n in gt_by_video if n not in scores_by_video),
        "unmatched_scores": sorted(n for n in scores_by_video if n not in gt_by_video),
        "per_video": per_video,
    }


def frame_level(
    score_files: dict[str, ScoreFile], gt: dict[str, GtVideo], stride: int, sources: dict[str, int]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """Expand every matched score file to its video's frames -> (frame scores, frame labels, warnings).
    n_frames: the annotation's, else the score file's, else T x stride (counted in `sources`).
    A file's own stride wins over `stride`."""
    scores, labels, warns = {}, {}, {}
    for name, sf in score_files.items():
        if name not in gt:
            continue
        g = gt[name]
        step = sf.stride or stride
        n, source = (g.n_frames, "annotation") if g.n_frames is not None else (sf.n_frames, "score_file")
        if n is None:
            n = sf.scores.size * step if sf.frame_indices is None else int(sf.frame_indices[-1]) + step
            source = "scores_x_stride"
        sources[source] = sources.get(source, 0) + 1
        notes = []
        if sf.n_frames is not None and g.n_frames is not None and sf.n_frames != g.n_frames:
            notes.append(f"score file says {sf.n_frames} frames, annotation {g.n_frames}")
        if sf.frame_indices is None and abs(sf.scores.size * step - n) >= 2 * step:
            notes.append(
                f"{sf.scores.size} scores x stride {step} = {sf.scores.size * step} frames for {n} (wrong stride?)"
            )
        if notes:
            warns[name] = "; ".join(notes)
        scores[name] = expand_scores(sf.scores, n, step, sf.frame_indices)
        labels[name] = g.frame_labels(n)
    return scores, labels, warns


def evaluate_ground_truth(
    gt: dict[str, GtVideo],
    score_files: dict[str, ScoreFile],
    stride: int = 16,
    allow_missing: bool = False,
    hint: str = " (--allow-missing evaluates the rest)",
) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Evaluate the score files against every video of `gt` -> (report, frame scores, frame labels).
    Videos of `gt` without scores raise MissingScoresError unless `allow_missing` (then the report says
    `"partial": true` and lists them). The report counts videos and frames evaluated."""
    missing = [n for n in gt if n not in score_files]
    if missing and not allow_missing:
        raise MissingScoresError(
            f"{len(missing)} of {len(gt)} test videos have no scores: {first_names(missing)}{hint}"
        )
    sources: dict[str, int] = {}
    frame_scores, frame_labels, warns = frame_level(score_files, gt, stride, sources)
    report = evaluate_detection(frame_scores, frame_labels)
    report["n_videos_listed"] = len(gt)
    report["missing_scores"] = missing
    report["partial"] = bool(missing)
    report["unmatched_scores"] = sorted(n for n in score_files if n not in gt)
    report["warnings"] = warns
    report["frame_count_source"] = sources
    report["stride_default"] = stride
    for name, entry in report["per_video"].items():
        entry["label"] = gt[name].label
    return report, frame_scores, frame_labels


def run_detection(
    scores_dir: str | Path,
    annotations: str | Path | dict[str, GtVideo],
    stride: int = 16,
    allow_missing: bool = False,
    frame_counts: str | Path | None = None,
    test_list: str | Path | None = None,
) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Load a score folder and annotations (a file, optionally with a frame-count list and a test list, or loaded
    ground truth), evaluate -> (report, frame scores, frame labels). See evaluate_ground_truth for missing videos."""
    gt = annotations
    if not isinstance(gt, dict):
        gt = load_ground_truth(annotations, frame_counts=frame_counts, test_list=test_list)
    files, bad = load_score_dir(scores_dir)
    report, frame_scores, frame_labels = evaluate_ground_truth(gt, files, stride, allow_missing)
    report["bad_score_files"] = bad
    return report, frame_scores, frame_labels


def worst_videos(report: dict, k: int = 4) -> list[str]:
    """Anomalous videos with the lowest per-video AUC, then normal videos with the highest mean score."""
    pv = report["per_video"]
    anom = sorted(
        (n for n, v in pv.items() if v["anomalous"] and v["auc"] is not None), key=lambda n: pv[n]["auc"]
    )
    norm = sorted((n for n, v in pv.items() if not v["anomalous"]), key=lambda n: -pv[n]["mean_score"])
    return anom[:k] + norm[:k]
