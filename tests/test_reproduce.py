"""tools/reproduce.py end to end: the tiny model and a random scorer on generated stand-in videos named like real
UCF-Crime / XD-Violence test videos, with events taken from the shared official annotations (frame numbers and
counts scaled down by 10), and real HIVAU-70k test rows. Oracles: scikit-learn on arrays built here from the
score files and the annotation lines; the paper's numbers as printed in its tables."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path as shared_file
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from holmesvau.testing import make_random_scorer
from holmesvau.testing.synthetic import make_video

REPO = Path(__file__).resolve().parents[1]
# a real end-to-end run (model load, generation, Java PTB tokenizer + METEOR): ~40-60 s on 2 idle cores
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SCALE = 10
UCF = ["Abuse028_x264", "Arson011_x264", "Normal_Videos_003_x264"]
XD = {  # name -> frame count of the stand-in (XD frame counts come from the videos themselves)
    "Deadpool.2016__#0-18-58_0-19-20_label_B1-0-0": 61,
    "v=u5SF4SlqNDQ__#00-00-00_00-01-00_label_G-0-0": 154,
    "A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A": 100,
}
ROW_IDS = {0, 1, 2, 3, 4, 5, 6, 1949, 1950, 1951}  # Abuse028 video/event/clip rows, Deadpool video rows
PAPER = {"ucf-crime": 88.96, "xd-violence": 87.68}  # Table 1, Holmes-VAU (Ours)


def _scaled(pairs):
    return [-1 if x == -1 else x // SCALE for x in pairs]


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    """DATA_ROOT in the HIVAU-70k layout with UCF-Crime/ and XD-Violence/ stand-in annotation subsets."""
    shared = shared_file
    root = tmp_path_factory.mktemp("data")
    ucf_counts = {}
    lines_t, lines_c = [], []
    for line in shared("data/UCF-Crime/test_annotation_with_frame_counts.txt").read_text().splitlines():
        t = line.split()
        name = t[0].split("/")[-1][:-4]
        if name in UCF:
            n, pairs = int(t[1]) // SCALE, _scaled([int(x) for x in t[3:]])
            ucf_counts[name] = (n, pairs)
            lines_t.append(f"{name}.mp4  {t[2]}  " + "  ".join(map(str, pairs)))
            lines_c.append(f"{t[0]} {n} {t[2]} " + " ".join(map(str, pairs)))
    assert len(ucf_counts) == 3
    (root / "UCF-Crime").mkdir()
    (root / "UCF-Crime/Temporal_Anomaly_Annotation_for_Testing_Videos.txt").write_text(
        "\n".join(lines_t) + "\n"
    )
    (root / "UCF-Crime/test_annotation_with_frame_counts.txt").write_text("\n".join(lines_c) + "\n")
    xd_pairs = {}
    for line in shared("data/XD-Violence/annotations.txt").read_text().splitlines():
        t = line.split()
        if t[0] in XD:
            xd_pairs[t[0]] = _scaled([int(x) for x in t[1:]])
    listed = [ln.strip() for ln in shared("data/XD-Violence/test_videos.txt").read_text().splitlines()]
    assert set(XD) <= set(listed) and len(xd_pairs) == 2
    (root / "XD-Violence").mkdir()
    (root / "XD-Violence/annotations.txt").write_text(
        "".join(f"{n} {' '.join(map(str, p))}\n" for n, p in xd_pairs.items())
    )
    (root / "XD-Violence/test_videos.txt").write_text("".join(f"{n}\n" for n in XD))

    videos = root / "videos"
    for name, (n, pairs) in ucf_counts.items():
        spans = [(s, e) for s, e in zip(pairs[::2], pairs[1::2]) if s >= 0]
        make_video(videos / f"ucf-crime/videos/test/{name}.mp4", n, bright_ranges=spans)
    for name, n in XD.items():
        p = xd_pairs.get(name, [])
        make_video(
            videos / f"xd-violence/videos/test/{name}.mp4",
            n,
            fps=24,
            bright_ranges=list(zip(p[::2], p[1::2])),
        )
    make_video(videos / "ucf-crime/events/test/Abuse028_x264_E0.mp4", 24, bright_ranges=[(4, 20)])
    make_video(videos / "ucf-crime/clips/test/Abuse028_x264_E0C0.mp4", 12)
    rows = [
        json.loads(ln)
        for ln in shared("data/HIVAU-70k/instruction/merge_instruction_test_final.jsonl").open()
    ]
    rows = [r for r in rows if r["id"] in ROW_IDS]
    assert len(rows) == len(ROW_IDS)
    (root / "instruction").mkdir()
    (root / "instruction/merge_instruction_test_final.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    scorer = make_random_scorer(root / "scorer.pth", input_dim=64)
    return root, scorer, ucf_counts, xd_pairs


def _cmd(root, scorer, model, out, *extra):
    return [sys.executable, str(REPO / "tools/reproduce.py"), "--data-root", str(root), "--output-dir", str(out),
            "--model", str(model), "--scorer", str(scorer), "--device", "cpu", "--select-frames", "4",
            "--dense-stride", "8", "--max-new-tokens", "3", "--quiet", *extra]  # fmt: skip


def _frame_arrays(out: Path, names, counts, pairs):
    """Frame scores from the score files (score i covers [8 i, 8 i + 8)) and labels from the lines, built here."""
    g, s = [], []
    for n in names:
        found = list((out / "scores").rglob(f"{n}.npz"))  # folders kept: one file per video, wherever scored
        assert len(found) == 1, found
        with np.load(found[0]) as z:
            sc, stride = z["scores"].astype(np.float64), int(z["stride"])
        labels = np.zeros(counts[n], np.uint8)
        for a, b in zip(pairs[n][::2], pairs[n][1::2]):
            if a >= 0:
                labels[a:b] = 1
        idx = np.minimum(np.arange(counts[n]) // stride, sc.size - 1)
        g.append(labels)
        s.append(sc[idx])
    return np.concatenate(g), np.concatenate(s)


@pytest.fixture(scope="module")
def smoke(standins, tiny_model_dir, tmp_path_factory):
    """One full run of tools/reproduce.py (all three tasks) on the stand-ins."""
    root, scorer, _, _ = standins
    out = tmp_path_factory.mktemp("smoke") / "repro"
    proc = subprocess.run(
        _cmd(root, scorer, tiny_model_dir, out), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.mark.slow
def test_smoke_reproduction_end_to_end(standins, smoke):
    _, _, ucf_counts, xd_pairs = standins
    out, proc = smoke
    results = json.loads((out / "results.json").read_text())
    md = (out / "results.md").read_text()
    assert (
        results["tasks"] == ["detection-ucf", "detection-xd", "reasoning"] and results["skipped_tasks"] == {}
    )
    assert results["partial"] is False and md.startswith("# Reproduction of Holmes-VAU")

    # detection: every number present, videos and frames counted, equal to sklearn on arrays built here
    ucf, xd = results["detection"]["ucf-crime"], results["detection"]["xd-violence"]
    counts = {n: c for n, (c, _) in ucf_counts.items()}
    g, s = _frame_arrays(out, UCF, counts, {n: p for n, (_, p) in ucf_counts.items()})
    assert (ucf["n_videos"], ucf["n_videos_listed"], ucf["n_anomalous_videos"]) == (3, 3, 2)
    assert ucf["n_frames"] == g.size == 141 + 126 + 282 and ucf["n_anomalous_frames"] == g.sum()
    assert ucf["auc"] == pytest.approx(roc_auc_score(g, s), abs=1e-12) and not ucf["partial"]
    assert ucf["frame_count_source"] == {"annotation": 3}
    g, s = _frame_arrays(out, list(XD), XD, {n: xd_pairs.get(n, []) for n in XD})
    assert (xd["n_videos"], xd["n_anomalous_videos"], xd["n_frames"]) == (3, 2, g.size) and g.size == sum(
        XD.values()
    )
    assert xd["ap"] == pytest.approx(average_precision_score(g, s), abs=1e-12)
    precision, recall, _ = precision_recall_curve(g, s)
    assert xd["ap_trapezoid"] == pytest.approx(auc(recall, precision), abs=1e-12)
    assert xd["frame_count_source"] == {"score_file": 3}
    for name, r in (("ucf-crime", ucf), ("xd-violence", xd)):
        c = r["comparison"]
        ours = 100 * (r["auc"] if name == "ucf-crime" else r["ap"])
        assert c["paper"] == PAPER[name] and c["ours"] == pytest.approx(ours)
        assert c["delta"] == pytest.approx(ours - PAPER[name])
        assert all(r[k] is not None for k in ("auc", "ap", "ap_trapezoid"))
        assert (
            f"| {c['metric']} | {PAPER[name]:.2f} | {c['ours']:.2f} | {c['delta']:+.2f} | 3 of 3 | {r['n_frames']} |"
            in md
        )

    # reasoning: every row scored, every level's numbers next to the paper's Table 2
    rea = results["reasoning"]
    assert rea["rows"]["scored"] == rea["rows"]["listed"] == 10 and rea["rows"]["failed"] == 0
    assert {lv: rea["comparison"]["BLEU"][lv]["n"] for lv in ("clip", "event", "video")} == {
        "clip": 1,
        "event": 3,
        "video": 6,
    }
    assert (
        rea["comparison"]["CIDEr"]["event"]["paper"] == 1.519
        and rea["comparison"]["ROUGE"]["video"]["paper"] == 0.355
    )
    for metric, by_level in rea["comparison"].items():
        for level, c in by_level.items():
            assert c["ours"] is not None and c["paper"] is not None, (metric, level)
            assert c["delta"] == pytest.approx(c["ours"] - c["paper"])
            assert f"| {metric} | {level} | {c['n']} | {c['paper']:.3f} | {c['ours']:.3f} |" in md
    assert rea["judgement"]["event"]["n"] == 1 and rea["judgement"]["video"]["n"] == 2
    preds = [json.loads(ln) for ln in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in preds) == sorted(ROW_IDS) and all(p["status"] == "ok" for p in preds)
    # one dense pass per video: the video-level rows wrote the scores detection reused (logged with no count)
    log = [json.loads(ln) for ln in (out / "scores_log_detection-ucf.jsonl").read_text().splitlines()]
    assert {Path(r["id"]).name: r["n_scores"] for r in log}["Abuse028_x264.mp4"] is None
    assert (
        "Rows scored: 10 of 10 listed" in md
        and json.loads(proc.stdout.splitlines()[-1])["reasoning_rows"] == 10
    )


@pytest.mark.slow
def test_missing_videos_error_then_allow_partial(standins, smoke, tiny_model_dir, tmp_path):
    """A test list naming videos that are absent: an error before any model loads; --allow-partial evaluates the
    rest, says so, and (resuming in a copy of the smoke run's output) computes nothing again."""
    root, scorer, _, _ = standins
    extra = ["v=zI0q5UDP47g__#1_label_B4-0-0", "Casino.Royale.2006__#01-46-40_01-47-14_label_B6-0-0"]
    xd_dir = tmp_path / "XD-Violence"
    xd_dir.mkdir()
    (xd_dir / "annotations.txt").write_text((root / "XD-Violence/annotations.txt").read_text())
    (xd_dir / "test_videos.txt").write_text("".join(f"{n}\n" for n in [*XD, *extra]))
    out = tmp_path / "repro"
    shutil.copytree(smoke[0], out)
    (out / "results.json").unlink()
    cmd = _cmd(root, scorer, "no/such-model", out, "--tasks", "detection-xd", "--xd-annotations", str(xd_dir))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    # the data check runs before the model loads (the model given does not exist)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        f"error: detection-xd: 2 of 5 test videos missing in {root / 'videos/xd-violence/videos/test'}: {extra[0]}, "
        f"{extra[1]} (--allow-partial" in proc.stderr
    )
    assert not (out / "results.json").exists()

    cmd[cmd.index("no/such-model")] = str(tiny_model_dir)
    proc = subprocess.run([*cmd, "--allow-partial"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    xd = results["detection"]["xd-violence"]
    assert results["prediction"]["detection-xd"] == {"total": 3, "skipped_done": 3, "ok": 0, "failed": 0}
    before = json.loads((smoke[0] / "results.json").read_text())["detection"]["xd-violence"]
    assert (xd["ap"], xd["auc"], xd["n_frames"]) == (before["ap"], before["auc"], before["n_frames"])
    assert xd["partial"] and (xd["n_videos"], xd["n_videos_listed"], xd["n_missing"]) == (3, 5, 2)
    assert xd["missing_first"] == extra and xd["n_frames"] == sum(XD.values())
    md = (out / "results.md").read_text()
    assert "| 3 of 5 (partial) |" in md and xd["comparison"]["delta"] is None  # no Δ for a partial cell
    banner = "**PARTIAL RESULT, not comparable to the paper (no Δ): xd-violence: 3 of 5 videos evaluated**"
    assert md.splitlines()[0] == proc.stdout.splitlines()[0] == banner
    assert results["partial"] is True and json.loads(proc.stdout.splitlines()[-1])["partial"] is True
    # resuming with other prediction settings would mix answers and scores: refused, nothing loaded
    proc = subprocess.run([*cmd, "--allow-partial", "--max-new-tokens", "4"], capture_output=True, text=True)
    assert proc.returncode == 2 and "max_new_tokens: 3 then, 4 now" in proc.stderr


def test_data_check_names_missing_data_without_a_model(shared, tmp_path):
    from holmesvau.reproduce import DataError, ReproduceConfig, check_data

    root = tmp_path / "HIVAU-70k"
    (root / "videos/ucf-crime/videos/test").mkdir(parents=True)
    cfg = ReproduceConfig(
        root, tmp_path / "o", ucf_annotations=shared("data/UCF-Crime"), tasks=("detection-ucf",)
    )
    with pytest.raises(
        DataError,
        match=r"detection-ucf: 290 of 290 test videos missing in .*/test: Abuse028_x264, Abuse030_x264",
    ):
        check_data(cfg)
    cfg.limit = 2  # a smoke run lists the first N videos only, anomalous and normal alternating
    with pytest.raises(
        DataError, match=r"2 of 2 test videos missing in .*: Abuse028_x264, Normal_Videos_003_x264$"
    ):
        check_data(cfg)
    make_video(root / "videos/ucf-crime/videos/test/Abuse028_x264.mp4", 4)
    with pytest.raises(
        DataError,
        match=r"1 of 2 test videos missing in .*: Normal_Videos_003_x264 \(--allow-partial evaluates",
    ):
        check_data(cfg)
    cfg.allow_partial = True
    run, skipped = check_data(cfg)
    assert run["detection-ucf"].present == 1 and run["detection-ucf"].missing == ["Normal_Videos_003_x264"]
    cfg.tasks, cfg.limit = None, None  # by default: what the data allows; the rest is skipped with the reason
    run, skipped = check_data(cfg)
    assert list(run) == ["detection-ucf"] and "annotation file(s) not found" in skipped["detection-xd"]
    assert "instruction file not found" in skipped["reasoning"]
    assert "python HIVAU-70k/download.py --root" in skipped["reasoning"]
