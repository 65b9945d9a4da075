"""`python inference.py`: answer printed, JSON and plot written (ATS frames = density-aware sampling of the reported
curve; a planted anomalous stretch draws most of them); bad inputs give one clear error line."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import expected_ats_frames, make_planted_scorer

from holmesvau.ats.weights import make_random_scorer
from holmesvau.synthetic import make_video

REPO = Path(__file__).resolve().parents[1]


def _cli():
    spec = importlib.util.spec_from_file_location("inference_cli", REPO / "inference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BRIGHT = (30, 50)  # the planted anomalous stretch


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return make_video(d / "long.mp4", 80, bright_ranges=[BRIGHT]), make_random_scorer(
        d / "s.pth", input_dim=64
    )


def test_cli_writes_json_and_plot(tiny_model_dir, tiny_lm, media, tmp_path):
    video, _ = media
    # a scorer whose curve is high on the bright stretch (tiny_lm is the model of tiny_model_dir)
    scorer = make_planted_scorer(tiny_lm, tmp_path / "planted.pth")
    cmd = [
        sys.executable, "inference.py", "--video", str(video), "--prompt", "What happens?",
        "--model", str(tiny_model_dir), "--scorer", str(scorer), "--select-frames", "4", "--dense-stride", "8",
        "--max-new-tokens", "4", "--device", "cpu", "--output", str(tmp_path / "r.json"),
        "--plot", str(tmp_path / "curve.png"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "HolmesVAU:" in proc.stdout and "User: What happens?" in proc.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["sampling"] == "ats" and result["dense_frame_indices"] == list(range(0, 80, 8))
    assert len(result["dense_scores"]) == 10
    assert result["frame_indices"] == expected_ats_frames(result, 4)
    assert result["answer"] in proc.stdout
    assert (tmp_path / "curve.png").stat().st_size > 1000
    inside = [BRIGHT[0] <= i < BRIGHT[1] for i in result["dense_frame_indices"]]
    assert [s > 0.9 for s in result["dense_scores"]] == inside, result["dense_scores"]  # the plant worked
    # 3 of 4 frames on the stretch (25% of the video; uniform sampling puts 1 there: [9, 29, 49, 68])
    assert sum(BRIGHT[0] <= i < BRIGHT[1] for i in result["frame_indices"]) == 3, result["frame_indices"]


def test_cli_frame_indices_and_no_ats(tiny_model_dir, media, tmp_path, capsys):
    video, _ = media
    out = tmp_path / "r.json"
    argv = ["--video", str(video), "--model", str(tiny_model_dir), "--no-ats", "--frame-indices", "0,10,79"]
    assert (
        _cli().main([*argv, "--max-new-tokens", "2", "--device", "cpu", "--output", str(out), "--quiet"]) == 0
    )
    result = json.loads(out.read_text())
    assert result["frame_indices"] == [0, 10, 79] and result["sampling"] == "given"


@pytest.mark.parametrize(
    "case,pattern",
    [
        ("video", "missing.mp4: no such file"),
        ("model", "no-model-here: no such folder.*--model"),
        ("scorer", "--no-ats"),
        ("frames", "out of range"),
    ],
)
def test_cli_errors_are_one_clear_line(tiny_model_dir, media, tmp_path, capsys, case, pattern):
    video, scorer = media
    args = {"--video": str(video), "--model": str(tiny_model_dir), "--scorer": str(scorer)}
    if case == "video":
        args["--video"] = str(tmp_path / "missing.mp4")
    elif case == "model":
        args["--model"] = str(tmp_path / "no-model-here")
    elif case == "scorer":
        args["--scorer"] = str(tmp_path / "no-scorer.pth")
    argv = [x for kv in args.items() for x in kv] + ["--device", "cpu", "--max-new-tokens", "2", "--quiet"]
    if case == "frames":
        argv += ["--frame-indices", "0,500"]
    assert _cli().main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(pattern, err)
