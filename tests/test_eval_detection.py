"""Detection metrics: stride expansion, AUC/AP against scikit-learn, ground truth from both annotation formats,
score files, and the tools/evaluate.py detection command end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from holmesvau.eval.detection import MissingScoresError, evaluate_detection, expand_scores, run_detection
from holmesvau.eval.ground_truth import GtVideo, gt_from_raw_database, parse_temporal_txt, video_key
from holmesvau.eval.score_files import load_score_dir, load_score_file, save_scores

REPO = Path(__file__).resolve().parents[1]

RAW_DB = "data/HIVAU-70k/raw_annotations/ucf_database_test.json"


def test_expand_scores_last_partial_snippet():
    s = np.array([0.1, 0.5, 0.9])
    out = expand_scores(s, n_frames=37, stride=16)  # 2 full snippets + 5 frames of a third
    assert out.shape == (37,)
    assert np.all(out[:16] == 0.1) and np.all(out[16:32] == 0.5) and np.all(out[32:] == 0.9)
    # one snippet short (the scorer dropped the partial tail): the tail repeats the last score
    assert np.all(expand_scores(s[:2], 37, 16)[32:] == 0.5)
    # more scores than frames: cut off
    assert np.array_equal(expand_scores(s, 20, 16), np.r_[np.full(16, 0.1), np.full(4, 0.5)])


def test_expand_scores_with_frame_indices():
    out = expand_scores([1.0, 2.0, 3.0], 10, frame_indices=[2, 5, 9])
    assert out.tolist() == [1, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    with pytest.raises(ValueError, match="non-decreasing"):
        expand_scores([1.0, 2.0], 10, frame_indices=[5, 2])
    with pytest.raises(ValueError, match="no scores"):
        expand_scores([], 10)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 20), st.integers(-3, 3))
def test_expand_scores_property(n_snippets, stride, extra):
    scores = np.arange(n_snippets, dtype=float)
    n = max(n_snippets * stride + extra, 0)
    out = expand_scores(scores, n, stride)
    assert out.shape == (n,)
    for f in range(n):
        assert out[f] == min(f // stride, n_snippets - 1)
    assert np.array_equal(out, expand_scores(scores, n, frame_indices=np.arange(n_snippets) * stride))


def test_auc_ap_equal_sklearn_on_hand_built_arrays():
    rng = np.random.default_rng(3)
    gt = {
        "a": np.r_[np.zeros(40), np.ones(25), np.zeros(35)].astype(np.uint8),
        "b": np.r_[np.ones(10), np.zeros(50)].astype(np.uint8),
        "n1": np.zeros(80, np.uint8),
        "n2": np.zeros(30, np.uint8),
    }
    scores = {k: np.clip(0.6 * v + rng.normal(0.2, 0.25, v.size), 0, 1) for k, v in gt.items()}
    scores["n2"][:5] = 0.95  # false alarms
    scores["extra"] = np.ones(5)
    r = evaluate_detection(scores, gt)
    names = ["a", "b", "n1", "n2"]
    g = np.concatenate([gt[n] for n in names])
    s = np.concatenate([scores[n] for n in names])
    assert r["auc"] == pytest.approx(roc_auc_score(g, s), abs=1e-12)
    assert r["ap"] == pytest.approx(average_precision_score(g, s), abs=1e-12)
    ga, sa = np.r_[gt["a"], gt["b"]], np.r_[scores["a"], scores["b"]]
    assert r["auc_anomalous_videos"] == pytest.approx(roc_auc_score(ga, sa), abs=1e-12)
    assert r["ap_anomalous_videos"] == pytest.approx(average_precision_score(ga, sa), abs=1e-12)
    assert r["n_videos"] == 4 and r["n_anomalous_videos"] == 2 and r["n_frames"] == g.size
    assert r["unmatched_scores"] == ["extra"] and r["missing_scores"] == []
    assert r["per_video"]["a"]["auc"] == pytest.approx(roc_auc_score(gt["a"], scores["a"]))
    assert r["per_video"]["n1"]["auc"] is None
    only_normal = evaluate_detection({"n1": scores["n1"]}, {"n1": gt["n1"]})
    assert only_normal["auc"] is None and only_normal["ap"] is None
    with pytest.raises(ValueError, match="frame scores for"):
        evaluate_detection({"a": np.zeros(3)}, {"a": gt["a"]})


def test_gt_from_raw_database_matches_seconds_times_fps(shared):
    from holmesvau.data.annotations import load_raw_database

    path = shared(RAW_DB)
    raw = json.loads(path.read_text())
    gt = gt_from_raw_database(path)
    db = load_raw_database(path, strict=False)
    assert set(gt) == set(db)
    checked_anomalous = 0
    for name, g in gt.items():
        entry = raw[name]
        n, fps = int(entry["n_frames"]), float(entry["fps"])
        labels = g.frame_labels()
        assert labels.shape == (n,) and np.array_equal(labels, db[name].frame_labels())
        if not entry["label"]:  # normal video: its events are normal segments
            assert labels.sum() == 0
            continue
        checked_anomalous += 1
        t = np.arange(n) / fps  # a frame's time; inside [start, end) up to one frame of rounding
        inside = np.zeros(n, bool)
        for start, end in entry["events"]:
            inside |= (t >= start) & (t < end)
        differ = np.flatnonzero(inside != labels.astype(bool))
        for f in differ:  # only frames within one frame of an event boundary may differ
            assert any(min(abs(f - s * fps), abs(f - e * fps)) <= 1.0 for s, e in entry["events"]), (name, f)
        assert differ.size <= 2 * len(entry["events"])
    assert checked_anomalous > 100


def test_temporal_txt_parser(tmp_path):
    p = tmp_path / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"
    p.write_text(
        "Arson011_x264.mp4  Arson  150  420  680  1267\n"
        "Abuse028_x264.mp4  Abuse  165  240  -1  -1\n"
        "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1\n"
        "\n"
        "v=abc__#00-01_label_B1-0-0 10 20 30 40\n"
    )
    gt = parse_temporal_txt(p)
    assert set(gt) == {
        "Arson011_x264",
        "Abuse028_x264",
        "Normal_Videos_003_x264",
        "v=abc__#00-01_label_B1-0-0",
    }
    a = gt["Arson011_x264"]
    assert (
        a.anomalous and a.label == "Arson" and a.intervals == [(150, 420), (680, 1267)] and a.n_frames is None
    )
    lab = a.frame_labels(1300)
    assert (
        lab[149] == 0
        and lab[150] == 1
        and lab[419] == 1
        and lab[420] == 0
        and lab[680:1267].all()
        and lab.sum() == 857
    )
    assert gt["Abuse028_x264"].intervals == [(165, 240)]
    assert (
        not gt["Normal_Videos_003_x264"].anomalous
        and gt["Normal_Videos_003_x264"].frame_labels(50).sum() == 0
    )
    assert gt["v=abc__#00-01_label_B1-0-0"].intervals == [(10, 20), (30, 40)]
    with pytest.raises(ValueError, match="frame count"):
        a.frame_labels()
    bad = tmp_path / "bad.txt"
    bad.write_text("Arson011_x264.mp4  Arson  150\n")
    with pytest.raises(ValueError, match=r"bad.txt:1"):
        parse_temporal_txt(bad)


def test_video_key_keeps_dots_of_xd_names():
    assert video_key("ucf-crime/videos/test/Abuse028_x264.mp4") == "Abuse028_x264"
    assert video_key("Rush.Hour.1998.BluRay__#00-08-08_00-09-15_label_B2-B6-G") == (
        "Rush.Hour.1998.BluRay__#00-08-08_00-09-15_label_B2-B6-G"
    )


def test_score_files_roundtrip_and_bad_files(tmp_path):
    save_scores(tmp_path / "v1.npz", [0.1, 0.2], stride=8, n_frames=12, fps=30.0)
    save_scores(tmp_path / "Some.Movie.2000__#1_label_A.json", [0.3], stride=16, frame_indices=[0])
    np.save(tmp_path / "v3.npy", np.array([0.5, 0.6]))
    (tmp_path / "v4.json").write_text('{"scores": []}')
    (tmp_path / "v5.npz").write_bytes(b"not a zip")
    (tmp_path / "notes.txt").write_text("ignored")
    files, bad = load_score_dir(tmp_path)
    assert set(files) == {"v1", "Some.Movie.2000__#1_label_A", "v3"}
    assert set(bad) == {"v4.json", "v5.npz"} and all("bad score file" in m for m in bad.values())
    v1 = files["v1"]
    assert v1.stride == 8 and v1.n_frames == 12 and v1.fps == 30.0 and np.allclose(v1.scores, [0.1, 0.2])
    assert files["v3"].stride is None and files["Some.Movie.2000__#1_label_A"].frame_indices.tolist() == [0]
    with pytest.raises(ValueError, match="v4.json"):
        load_score_file(tmp_path / "v4.json")


def _write_scores_for(db, folder, names, rng):
    for i, name in enumerate(names):
        v = db[name]
        labels = v.frame_labels().astype(float)
        t = -(-v.n_frames // 16)
        s = np.array([labels[j * 16 : (j + 1) * 16].mean() for j in range(t)]) * 0.7 + 0.3 * rng.random(t)
        if i % 2:
            np.save(folder / f"{name}.npy", s)
        else:
            save_scores(folder / f"{name}.npz", s, 16, n_frames=v.n_frames, fps=v.fps)


def test_run_detection_and_cli_on_shared_annotations(shared, tmp_path):
    from holmesvau.data.annotations import load_raw_database

    path = shared(RAW_DB)
    db = load_raw_database(path, strict=False)
    names = sorted(n for n in db if db[n].n_frames < 3000)
    names = [n for n in names if db[n].is_anomalous][:6] + [n for n in names if not db[n].is_anomalous][:4]
    scores_dir = tmp_path / "scores"
    scores_dir.mkdir()
    _write_scores_for(db, scores_dir, names, np.random.default_rng(0))
    (scores_dir / "broken.npy").write_bytes(b"xx")

    with pytest.raises(
        MissingScoresError, match=rf"^{len(db) - 10} of {len(db)} test videos have no scores: "
    ):
        run_detection(scores_dir, path, stride=16)
    report, frame_scores, frame_labels = run_detection(scores_dir, path, stride=16, allow_missing=True)
    g = np.concatenate([frame_labels[n] for n in names])
    s = np.concatenate([frame_scores[n] for n in names])
    assert report["auc"] == pytest.approx(roc_auc_score(g, s)) and report["auc"] > 0.9
    assert report["n_videos"] == 10 and len(report["missing_scores"]) == len(db) - 10 and report["partial"]
    assert list(report["bad_score_files"]) == ["broken.npy"] and report["warnings"] == {}

    out, plots = tmp_path / "report.json", tmp_path / "plots"
    cmd = [sys.executable, str(REPO / "tools/evaluate.py"), "detection", "--scores", str(scores_dir)]
    cmd += ["--annotations", str(path), "--output", str(out), "--plot-dir", str(plots)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and not out.exists()  # ground truth videos without scores: an error ...
    assert f"error: {len(db) - 10} of {len(db)} test videos have no scores: " in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([*cmd, "--allow-missing"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # ... unless asked; then it says what it evaluated
    assert f"evaluated 10 of {len(db)} videos (PARTIAL: {len(db) - 10} without scores" in proc.stdout
    assert f"{g.size} frames" in proc.stdout
    written = json.loads(out.read_text())
    assert written["auc"] == pytest.approx(report["auc"]) and "AUC" in proc.stdout
    assert (plots / "curves.png").stat().st_size > 1000 and (plots / "worst_videos.png").stat().st_size > 1000

    txt = tmp_path / "ucf.txt"  # the same ground truth as a temporal txt: same metrics
    lines = []
    for n in names:
        pairs = [db[n].frame_range(a, b) for a, b in db[n].events] if db[n].is_anomalous else []
        flat = [x for p in pairs for x in p] or [-1, -1]
        lines.append(f"{n}.mp4  {'/'.join(db[n].label) or 'Normal'}  " + "  ".join(map(str, flat)))
    txt.write_text("\n".join(lines) + "\n")
    report_txt, scores_txt, labels_txt = run_detection(scores_dir, txt, stride=16)  # lists only these 10
    assert report_txt["n_videos"] == 10 and report_txt["n_anomalous_videos"] == report["n_anomalous_videos"]
    for i, n in enumerate(names):
        if i % 2 == 0:  # .npz with n_frames: identical frames and labels
            assert np.array_equal(labels_txt[n], frame_labels[n]) and np.array_equal(
                scores_txt[n], frame_scores[n]
            )
        else:  # .npy, and the txt has no frame count: T x stride frames, labels agree on the real frames
            n_real = db[n].n_frames
            assert labels_txt[n].size == -(-n_real // 16) * 16
            assert (
                np.array_equal(labels_txt[n][:n_real], frame_labels[n]) and not labels_txt[n][n_real:].any()
            )


def test_cli_reports_bad_input(tmp_path):
    cmd = [sys.executable, str(REPO / "tools/evaluate.py"), "detection", "--scores", str(tmp_path / "none")]
    cmd += ["--annotations", str(tmp_path / "a.txt"), "--output", str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2 and "not found" in proc.stderr and not (tmp_path / "r.json").exists()


def test_gtvideo_clamps_intervals():
    g = GtVideo("v", True, [(-5, 3), (8, 50)])
    assert g.frame_labels(10).tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 1, 1]
