"""--scores-dir keeps the video's relative folder: `camA/0001.mp4` and `camB/0001.mp4` get their own score files
(once they shared `0001.npz` and camB was logged ok with camA's scores); detection still finds nested files."""

import json

import numpy as np
import pytest

from holmesvau.ats.weights import load_scorer
from holmesvau.data.instructions import parse_instruction
from holmesvau.eval.score_files import load_score_dir
from holmesvau.pipeline import HolmesVAU
from holmesvau.predict import dump_scores, predict_rows, score_file
from holmesvau.testing import make_random_scorer
from holmesvau.testing.synthetic import make_video


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_lm):
    root = tmp_path_factory.mktemp("videos")
    make_video(root / "camA/0001.mp4", 40)
    make_video(root / "camB/0001.mp4", 24, bright_ranges=[(4, 12)])
    make_video(root / "camB/0002.mp4", 32)
    scorer = make_random_scorer(tmp_path_factory.mktemp("s") / "scorer.pth", input_dim=64)
    return root, HolmesVAU(tiny_lm, load_scorer(scorer))


def test_score_file_names_keep_folders(tmp_path):
    assert score_file(tmp_path, "camA/0001.mp4") == tmp_path / "camA" / "0001.npz"
    assert score_file(tmp_path, "./x/y/v.avi") == tmp_path / "x" / "y" / "v.npz"
    assert score_file(tmp_path, "XD/A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A.mp4").name == (
        "A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A.npz"
    )
    for bad in ("../escape.mp4", "/abs/v.mp4", "a/../../b.mp4"):
        with pytest.raises(ValueError, match="relative"):
            score_file(tmp_path, bad)


def test_same_file_name_in_two_folders_gets_two_score_files(setup, tmp_path):
    root, vau = setup
    sd, log = tmp_path / "scores", tmp_path / "log.jsonl"
    videos = ["camA/0001.mp4", "camB/0001.mp4", "camB/0002.mp4", "../outside.mp4"]
    stats = dump_scores(vau, videos, root, sd, log, dense_stride=4, progress=False)
    assert stats == {"total": 4, "skipped_done": 0, "ok": 3, "failed": 1}
    for rel, n in (("camA/0001", 40), ("camB/0001", 24), ("camB/0002", 32)):
        with np.load(sd / f"{rel}.npz") as z:
            assert int(z["n_frames"]) == n
            want = vau.dense_scores(root / f"{rel}.mp4", 4, progress=False).scores
            np.testing.assert_array_equal(z["scores"], want)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["scores_file"], r["status"]) for r in rows] == [
        ("camA/0001.npz", "ok"), ("camB/0001.npz", "ok"), ("camB/0002.npz", "ok"), (None, "failed")
    ]  # fmt: skip
    assert "relative" in rows[3]["error"]
    # detection reads the folder recursively; two files of one video name are reported, not silently merged
    files, bad = load_score_dir(sd)
    assert sorted(files) == ["0001", "0002"] and files["0002"].n_frames == 32 and files["0001"].n_frames == 40
    assert bad == {"camB/0001.npz": "duplicate scores for 0001 (kept camA/0001.npz)"}


def test_prediction_run_writes_the_same_files(setup, tmp_path):
    root, vau = setup
    rows = [
        parse_instruction(
            {"id": i, "type": "video", "task": "judgement", "video": v, "prompt": "q?", "anwser": "a"}
        )
        for i, v in enumerate(["camA/0001.mp4", "camB/0001.mp4"])
    ]
    sd = tmp_path / "scores"
    stats = predict_rows(
        vau, rows, root, tmp_path / "p.jsonl", select_frames=2, dense_stride=4, max_new_tokens=2,
        scores_dir=sd, progress=False,
    )  # fmt: skip
    assert stats["ok"] == 2
    assert sorted(p.relative_to(sd).as_posix() for p in sd.rglob("*.npz")) == [
        "camA/0001.npz",
        "camB/0001.npz",
    ]
    with np.load(sd / "camB/0001.npz") as z:
        assert int(z["n_frames"]) == 24
