"""Detection protocols on the shared official annotations: UCF-Crime (290 videos, frame counts from the official
list) and XD-Violence (800 videos, the 300 normal ones all-negative). Oracles: the annotation lines parsed by hand
here, and scikit-learn on arrays concatenated here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from holmesvau.eval.detection import MissingScoresError, evaluate_ground_truth
from holmesvau.eval.ground_truth import with_frame_counts
from holmesvau.eval.protocols import PROTOCOLS
from holmesvau.eval.score_files import load_score_dir, save_scores

REPO = Path(__file__).resolve().parents[1]
UCF, XD = "data/UCF-Crime", "data/XD-Violence"


def _frames_by_hand(n: int, pairs: list[int]) -> np.ndarray:
    g = np.zeros(n, np.uint8)
    for s, e in zip(pairs[::2], pairs[1::2]):
        if s >= 0:
            g[s:e] = 1  # [start, end), numpy clamps to the video
    return g


def _write_scores(folder: Path, n_frames: dict[str, int], rng, stride=16) -> dict[str, np.ndarray]:
    """Random snippet scores (higher inside events is not needed: any scores test the bookkeeping);
    returns the frame scores expanded here: score i covers frames [16 i, 16 i + 16)."""
    frame_scores = {}
    for name, n in n_frames.items():
        s = rng.random(-(-n // stride))
        save_scores(folder / f"{name}.npz", s, stride, n_frames=n)
        frame_scores[name] = np.repeat(s.astype(np.float32).astype(np.float64), stride)[:n]
    return frame_scores


def test_xd_violence_ground_truth_from_shared_files(shared):
    gt = PROTOCOLS["xd-violence"].load(shared(XD))
    assert len(gt) == 800 and sum(g.anomalous for g in gt.values()) == 500
    normal = [g for g in gt.values() if not g.anomalous]
    assert len(normal) == 300 and all("label_A" in g.name for g in normal)
    assert all(g.frame_labels(1000).sum() == 0 for g in normal)  # no annotation line: every frame negative
    # line 2 of annotations.txt: `v=u5SF4SlqNDQ__#00-00-00_00-01-00_label_G-0-0 624 912 950 1441`
    g = gt["v=u5SF4SlqNDQ__#00-00-00_00-01-00_label_G-0-0"]
    lab = g.frame_labels(1500)
    assert g.intervals == [(624, 912), (950, 1441)] and lab.sum() == 288 + 491
    assert (lab[623], lab[624], lab[911], lab[912], lab[949], lab[950], lab[1440], lab[1441]) == (
        0,
        1,
        1,
        0,
        0,
        1,
        1,
        0,
    )
    assert np.flatnonzero(lab).tolist() == list(range(624, 912)) + list(range(950, 1441))


def test_xd_violence_ap_equals_sklearn_on_all_800_videos(shared, tmp_path):
    lines = [ln.split() for ln in (shared(XD) / "annotations.txt").read_text().splitlines() if ln.strip()]
    pairs = {t[0]: [int(x) for x in t[1:]] for t in lines}
    names = [ln.strip() for ln in (shared(XD) / "test_videos.txt").read_text().splitlines() if ln.strip()]
    rng = np.random.default_rng(0)
    # frame counts: the score files' (no XD frame count is in the shared files); events may run to the end
    n_frames = {
        n: (max(pairs[n]) + int(rng.integers(-5, 300)) if n in pairs else int(rng.integers(50, 900)))
        for n in names
    }
    frame_scores = _write_scores(tmp_path, n_frames, rng)
    gt_by_hand = {n: _frames_by_hand(n_frames[n], pairs.get(n, [])) for n in names}
    for n in names:  # make the scores informative, so AP is far from the base rate
        frame_scores[n] = frame_scores[n] * 0.5 + 0.5 * gt_by_hand[n] * rng.random()
        save_scores(tmp_path / f"{n}.npz", frame_scores[n], 1, n_frames=n_frames[n])

    files, bad = load_score_dir(tmp_path)
    assert not bad
    report, _, _ = evaluate_ground_truth(PROTOCOLS["xd-violence"].load(shared(XD)), files)
    g = np.concatenate([gt_by_hand[n] for n in names])
    s = np.concatenate([frame_scores[n].astype(np.float32) for n in names])
    precision, recall, _ = precision_recall_curve(g, s)
    assert report["n_videos"] == report["n_videos_listed"] == 800 and report["n_anomalous_videos"] == 500
    assert report["n_frames"] == g.size == sum(n_frames.values()) and report["n_anomalous_frames"] == g.sum()
    assert report["ap"] == pytest.approx(average_precision_score(g, s), abs=1e-12)
    assert report["ap_trapezoid"] == pytest.approx(auc(recall, precision), abs=1e-12)
    assert report["auc"] == pytest.approx(roc_auc_score(g, s), abs=1e-12)
    assert report["frame_count_source"] == {"score_file": 800} and not report["partial"]
    # the 300 normal videos count: AP over the 500 annotated videos alone is another (higher) number
    annotated = [n for n in names if n in pairs]
    ga = np.concatenate([gt_by_hand[n] for n in annotated])
    sa = np.concatenate([frame_scores[n].astype(np.float32) for n in annotated])
    assert average_precision_score(ga, sa) > report["ap"] + 0.01


def _ucf_counts(shared) -> tuple[dict[str, int], dict[str, list[int]]]:
    counts, pairs = {}, {}
    for line in (shared(UCF) / "test_annotation_with_frame_counts.txt").read_text().splitlines():
        t = line.split()
        name = t[0].split("/")[-1].removesuffix(".mp4")
        counts[name], pairs[name] = int(t[1]), [int(x) for x in t[3:]]
    return counts, pairs


def test_ucf_crime_official_290_videos_auc_equals_sklearn(shared, tmp_path):
    gt = PROTOCOLS["ucf-crime"].load(shared(UCF))
    assert len(gt) == 290 and sum(g.anomalous for g in gt.values()) == 140
    counts, pairs = _ucf_counts(shared)
    assert {n: g.n_frames for n, g in gt.items()} == counts
    # Arson011: events 150-420 and 680-1267 in a 1266-frame video -> the second is clamped to the end
    arson = gt["Arson011_x264"].frame_labels()
    assert arson.size == 1266 and arson.sum() == 270 + 586 and arson[679] == 0 and arson[680:].all()

    rng = np.random.default_rng(1)
    frame_scores = _write_scores(tmp_path, counts, rng)
    files, _ = load_score_dir(tmp_path)
    report, _, _ = evaluate_ground_truth(gt, files)
    names = list(counts)
    g = np.concatenate([_frames_by_hand(counts[n], pairs[n]) for n in names])
    s = np.concatenate([frame_scores[n] for n in names])
    assert report["n_videos"] == 290 and report["n_anomalous_videos"] == 140
    assert report["n_frames"] == g.size == sum(counts.values()) and report["n_anomalous_frames"] == g.sum()
    assert report["auc"] == pytest.approx(roc_auc_score(g, s), abs=1e-12)
    assert report["frame_count_source"] == {"annotation": 290}

    # missing score files: an error naming how many and the first few; allowed, the rest is evaluated
    gone = sorted(names)[:7]
    for n in gone:
        (tmp_path / f"{n}.npz").unlink()
    files, _ = load_score_dir(tmp_path)
    with pytest.raises(MissingScoresError) as err:
        evaluate_ground_truth(gt, files)
    msg = str(err.value)
    assert msg.startswith("7 of 290 test videos have no scores: ")
    assert all(n in msg for n in [n for n in gt if n in gone][:5])  # the first five in the annotation order
    report, _, _ = evaluate_ground_truth(gt, files, allow_missing=True)
    assert report["partial"] and report["n_videos"] == 283 and sorted(report["missing_scores"]) == gone
    keep = [n for n in names if n not in gone]
    g = np.concatenate([_frames_by_hand(counts[n], pairs[n]) for n in keep])
    assert report["n_frames"] == g.size
    assert report["auc"] == pytest.approx(roc_auc_score(g, np.concatenate([frame_scores[n] for n in keep])))


def test_hivau_alternative_is_a_251_video_subset(shared):
    hivau = PROTOCOLS["ucf-crime-hivau"].load(shared("data/HIVAU-70k/raw_annotations"))
    official = PROTOCOLS["ucf-crime"].load(shared(UCF))
    assert len(hivau) == 251 and set(hivau) < set(official)
    assert len(official["Shooting047_x264"].intervals) == 2 and len(hivau["Shooting047_x264"].intervals) == 1


def test_frame_counts_must_agree_with_the_annotation(tmp_path):
    from holmesvau.eval.ground_truth import parse_temporal_txt

    (tmp_path / "a.txt").write_text("A_x264.mp4  Arson  10  20  -1  -1\nB_x264.mp4  Normal  -1  -1  -1  -1\n")
    (tmp_path / "c.txt").write_text(
        "Arson/A_x264.mp4 50 Arson 10 21 -1 -1\nN/B_x264.mp4 40 Normal -1 -1 -1 -1\n"
    )
    with pytest.raises(ValueError, match="A_x264: intervals differ"):
        with_frame_counts(parse_temporal_txt(tmp_path / "a.txt"), tmp_path / "c.txt")
    (tmp_path / "c.txt").write_text("Arson/A_x264.mp4 50 Arson 10 20 -1 -1\n")
    with pytest.raises(ValueError, match="1 only in the annotation"):
        with_frame_counts(parse_temporal_txt(tmp_path / "a.txt"), tmp_path / "c.txt")


def test_cli_protocol_xd_violence(shared, tmp_path):
    names = [ln.strip() for ln in (shared(XD) / "test_videos.txt").read_text().splitlines() if ln.strip()]
    scores = tmp_path / "scores"
    _write_scores(scores, {n: 64 for n in names[:-3]}, np.random.default_rng(2))
    cmd = [sys.executable, str(REPO / "tools/evaluate.py"), "detection", "--scores", str(scores)]
    cmd += [
        "--protocol",
        "xd-violence",
        "--annotations",
        str(shared(XD)),
        "--output",
        str(tmp_path / "r.json"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2 and "error: 3 of 800 test videos have no scores: " in proc.stderr
    assert names[-1] in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([*cmd, "--allow-missing"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "evaluated 797 of 800 videos (PARTIAL: 3 without scores" in proc.stdout
    assert f"{797 * 64} frames" in proc.stdout and "AP (trapezoidal PR area)" in proc.stdout
