"""--scores-dir keeps the video's relative folder: `camA/0001.mp4` and `camB/0001.mp4` get their own score files
(once they shared `0001.npz` and camB was logged ok with camA's scores); detection still finds nested files.
A score file already there (detection ran first) feeds ATS when it fits the plan, instead of a second dense pass."""

import json

import numpy as np
import pytest
from helpers import naive_density_sampling

from holmesvau.ats.weights import load_scorer
from holmesvau.data.instructions import Instruction, parse_instruction
from holmesvau.eval.score_files import load_score_dir, save_scores
from holmesvau.frame_plan import SamplingConfig
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
        vau, rows, root, tmp_path / "p.jsonl", SamplingConfig(select_frames=2, dense_stride=4), max_new_tokens=2,
        scores_dir=sd, progress=False,
    )  # fmt: skip
    assert stats["ok"] == 2
    assert sorted(p.relative_to(sd).as_posix() for p in sd.rglob("*.npz")) == [
        "camA/0001.npz",
        "camB/0001.npz",
    ]
    with np.load(sd / "camB/0001.npz") as z:
        assert int(z["n_frames"]) == 24


def test_prediction_reuses_a_score_file_that_fits(setup, tmp_path, monkeypatch):
    """--scores-dir with a score file already there (detection ran first): ATS samples from its scores, no dense
    pass; a file written with another stride (or for another frame count) does not fit: the dense pass runs and
    the file is left as it was."""
    root, vau = setup
    calls = []
    real = vau.dense_scores
    monkeypatch.setattr(vau, "dense_scores", lambda *a, **k: calls.append(a) or real(*a, **k))
    rows = [Instruction(id=i, type="video", task="judgement", video="camA/0001.mp4", prompt="q?", answer="a")
            for i in range(2)]  # fmt: skip
    # a curve no random scorer gives: high on frames 24..35 of 40 (stride 4: dense positions 6..8)
    planted = np.array([0.0] * 6 + [1.0] * 3 + [0.0], dtype=np.float32)
    kw = dict(
        sampling=SamplingConfig(select_frames=3, dense_stride=4),
        max_new_tokens=2,
        progress=False,
        batch_size=2,
    )

    fits = tmp_path / "fits"
    save_scores(
        fits / "camA/0001.npz", planted, stride=4, n_frames=40, fps=25.0, frame_indices=np.arange(0, 40, 4)
    )
    predict_rows(vau, rows, root, tmp_path / "a.jsonl", scores_dir=fits, **kw)
    assert calls == []  # no dense pass: the file's scores were used
    dense_idx = list(range(0, 40, 4))
    want = [dense_idx[p] for p in naive_density_sampling(planted.tolist(), 3)]
    got = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [(r["sampling"], r["frame_indices"]) for r in got] == [("ats", want)] * 2
    assert sum(24 <= i < 36 for i in want) == 2  # the planted stretch drew most frames

    for name, stride, n_frames in (("stride", 8, 40), ("frames", 4, 36)):
        other = tmp_path / name
        idx = np.arange(0, n_frames, stride)  # a complete file of its own plan, just not this run's
        save_scores(other / "camA/0001.npz", np.resize(planted, idx.size), stride=stride, n_frames=n_frames,
                    fps=25.0, frame_indices=idx)  # fmt: skip
        before = (other / "camA/0001.npz").read_bytes()
        calls.clear()
        predict_rows(vau, rows, root, tmp_path / f"{name}.jsonl", scores_dir=other, **kw)
        assert len(calls) == 1, name  # recomputed once for the video
        assert (other / "camA/0001.npz").read_bytes() == before


def test_a_score_file_of_another_scorer_is_not_reused_nor_counted(setup, tmp_path, monkeypatch):
    """Score files record what made them (scorer, vision encoder, resize). A file recording another source is
    neither reused by prediction (the dense pass runs; the file is kept as it was) nor counted as done by
    dump_scores (the video fails with the reason); a file recording this run's source is reused."""
    root, vau = setup
    calls = []
    real = vau.dense_scores
    monkeypatch.setattr(vau, "dense_scores", lambda *a, **k: calls.append(a) or real(*a, **k))
    rows = [Instruction(id=0, type="video", task="judgement", video="camA/0001.mp4", prompt="q?", answer="a")]
    planted = np.array([0.0] * 6 + [1.0] * 3 + [0.0], dtype=np.float32)
    kw = dict(
        sampling=SamplingConfig(select_frames=3, dense_stride=4),
        max_new_tokens=2,
        progress=False,
        batch_size=1,
    )
    ours, other = vau.scores_source, "sha256:0123456789abcdef"
    assert ours.startswith("sha256:") and len(ours) == 23 and ours != other
    for source, reused in ((ours, True), (other, False)):
        sd = tmp_path / source.replace(":", "_")
        save_scores(sd / "camA/0001.npz", planted, stride=4, n_frames=40, fps=25.0,
                    frame_indices=np.arange(0, 40, 4), source=source)  # fmt: skip
        before = (sd / "camA/0001.npz").read_bytes()
        calls.clear()
        predict_rows(vau, rows, root, sd / "p.jsonl", scores_dir=sd, **kw)
        assert (calls == []) is reused, source
        assert (sd / "camA/0001.npz").read_bytes() == before
        stats = dump_scores(
            vau, ["camA/0001.mp4"], root, sd, sd / "log.jsonl", dense_stride=4, progress=False
        )
        logged = json.loads((sd / "log.jsonl").read_text().splitlines()[0])
        if reused:
            assert stats["skipped_done"] == 1 and logged["status"] == "ok"
        else:
            assert stats["failed"] == 1 and logged["status"] == "failed"
            assert "another scorer" in logged["error"] and str(sd / "camA/0001.npz") in logged["error"]
        assert (sd / "camA/0001.npz").read_bytes() == before
    # a file this code writes records the source of the run that wrote it
    sd = tmp_path / "fresh"
    dump_scores(vau, ["camB/0002.mp4"], root, sd, sd / "log.jsonl", dense_stride=4, progress=False)
    with np.load(sd / "camB/0002.npz") as z:
        assert str(z["source"]) == ours


def test_the_source_changes_with_the_scorer_weights_and_the_resize(setup, tmp_path):
    import torch

    from holmesvau.ats.weights import load_scorer

    root, vau = setup
    path = make_random_scorer(tmp_path / "s.pth", input_dim=64, seed=5)
    a, b = HolmesVAU(vau.lm, load_scorer(path)), HolmesVAU(vau.lm, load_scorer(path))
    assert a.scores_source == b.scores_source  # the same weights loaded twice
    assert HolmesVAU(vau.lm, load_scorer(path), resize="pil").scores_source != a.scores_source
    assert vau.scores_source != a.scores_source  # another scorer
    with torch.no_grad():
        next(iter(b.scorer.parameters())).view(-1)[0] += 1e-3  # one weight moved: its fingerprint follows
    assert HolmesVAU(vau.lm, b.scorer).scores_source != a.scores_source
